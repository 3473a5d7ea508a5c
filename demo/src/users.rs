//! Synthetic, seeded commands for the user service (user-views, the CQRS example): users
//! registering, changing their email or name, and leaving, with planted commands that do
//! not apply (a second registration, a malformed email, a command for nobody, a blank
//! name), which the command side must reject. It knows what it planted.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::generate::{MINUTE_MS, Rng, SPAN_MS, START_MS};

const FIRST_NAMES: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];

/// The commands, and which were planted not to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Commands {
    /// `commands-user` records (key: `user_id`, time: `timestamp_ms`), in time order.
    pub commands: Vec<Value>,
    /// The `command_id`s of the commands planted not to apply.
    pub planted: BTreeSet<String>,
}

/// Commands of about `scale` users for `seed`: the same seed and scale always give the
/// same commands.
pub fn commands(seed: u64, scale: usize) -> Commands {
    let mut rng = Rng::stream(seed, 5);
    let mut commands = Vec::new();
    let mut planted = BTreeSet::new();
    let mut next_id = 0;
    let mut push = |commands: &mut Vec<Value>, mut command: Value, at: i64, bad: bool| {
        let id = format!("cmd-{next_id:06}");
        next_id += 1;
        command["command_id"] = json!(id);
        command["timestamp_ms"] = json!(at);
        if bad {
            planted.insert(id);
        }
        commands.push(command);
    };
    for u in 0..scale.max(1) {
        let user = format!("u-{u:04}");
        let name = FIRST_NAMES[rng.index(FIRST_NAMES.len())];
        let mut at = START_MS + rng.between(0, SPAN_MS / 2);
        let email = |n: usize| format!("{}.{u}.{n}@example.org", name.to_lowercase());
        push(
            &mut commands,
            json!({"command": "register", "user_id": user, "name": name, "email": email(0)}),
            at,
            false,
        );
        for n in 1..=rng.between(0, 3) as usize {
            at += rng.between(MINUTE_MS, 10 * MINUTE_MS);
            let command = if rng.chance(0.5) {
                json!({"command": "change_email", "user_id": user, "email": email(n)})
            } else {
                json!({"command": "rename", "user_id": user, "name": format!("{name} {n}")})
            };
            push(&mut commands, command, at, false);
        }
        at += rng.between(MINUTE_MS, 10 * MINUTE_MS);
        if rng.chance(0.05) {
            let command = match rng.index(4) {
                0 => {
                    json!({"command": "register", "user_id": user, "name": name, "email": email(9)})
                }
                1 => json!({"command": "change_email", "user_id": user, "email": "no-at-sign"}),
                2 => json!({"command": "rename", "user_id": format!("u-9{u:04}"), "name": name}),
                _ => json!({"command": "rename", "user_id": user, "name": " "}),
            };
            push(&mut commands, command, at, true);
        }
        if rng.chance(0.1) {
            at += rng.between(MINUTE_MS, 10 * MINUTE_MS);
            push(
                &mut commands,
                json!({"command": "deactivate", "user_id": user}),
                at,
                false,
            );
        }
    }
    commands.sort_by_key(|c| c["timestamp_ms"].as_i64().unwrap_or_default());
    Commands { commands, planted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_commands_with_some_planted() {
        let first = commands(2, 300);
        assert_eq!(first, commands(2, 300));
        assert!(!first.planted.is_empty());
        let registered = first
            .commands
            .iter()
            .filter(|c| c["command"] == "register")
            .count();
        assert!(registered >= 300, "every user registers");
    }
}
