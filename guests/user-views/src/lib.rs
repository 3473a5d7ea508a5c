//! user-views: a user service's commands and its read model, the CQRS pattern. Deployed
//! on `commands-user` (as `user-commands`), it checks each command against the user as
//! its earlier events left them and turns it into an event on `events-user`; a command
//! that does not apply (registering a user twice, changing a user nobody registered, an
//! email that is no email) is rejected, to the dead-letter topic with why. Deployed on
//! `events-user` (as `user-views`), it builds each user's view from the events, in its
//! state under the user's id, which services read with `fnctl state get user-views ID`
//! (or the admin API's state route) instead of a database of their own.
//!
//! Both topics are keyed by user id, so a user's commands, events and view stay in one
//! partition and in order.

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure};

const COMMANDS: &str = "commands-user";
const EVENTS: &str = "events-user";

/// State keys of the command side's users (the view side keys views by bare user id).
const USER_PREFIX: &str = "user/";

/// A `commands-user` record.
#[derive(Debug, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
enum Command {
    Register {
        user_id: String,
        name: String,
        email: String,
    },
    ChangeEmail {
        user_id: String,
        email: String,
    },
    Rename {
        user_id: String,
        name: String,
    },
    Deactivate {
        user_id: String,
    },
}

/// An `events-user` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum UserEvent {
    Registered {
        user_id: String,
        name: String,
        email: String,
        at_ms: i64,
    },
    EmailChanged {
        user_id: String,
        email: String,
        at_ms: i64,
    },
    Renamed {
        user_id: String,
        name: String,
        at_ms: i64,
    },
    Deactivated {
        user_id: String,
        at_ms: i64,
    },
}

impl UserEvent {
    fn user_id(&self) -> &str {
        match self {
            UserEvent::Registered { user_id, .. }
            | UserEvent::EmailChanged { user_id, .. }
            | UserEvent::Renamed { user_id, .. }
            | UserEvent::Deactivated { user_id, .. } => user_id,
        }
    }
}

/// What the command side knows of a user: enough to decide which commands apply.
#[derive(Debug, Serialize, Deserialize)]
struct User {
    active: bool,
    email: String,
}

/// A user's view, the read model, as services read it.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct UserView {
    user_id: String,
    name: String,
    email: String,
    active: bool,
    registered_at_ms: i64,
    updated_at_ms: i64,
    /// Events applied to it.
    version: u64,
}

/// Handles a command or an event.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    match event.topic.as_str() {
        COMMANDS => on_command(event, ctx),
        EVENTS => on_event(event, ctx),
        other => Err(Failure::reject(format!(
            "user-views reads `{COMMANDS}` and `{EVENTS}`, not `{other}`"
        ))),
    }
}

streamfn::export!(handle);

/// Whether `email` looks like one: something, an @, a domain with a dot.
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

fn on_command(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let command: Command = event.json()?;
    let at_ms = event.timestamp_ms;
    let user_key = |id: &str| format!("{USER_PREFIX}{id}");
    let known = |ctx: &Context, id: &str| -> Result<User, Failure> {
        match ctx.get_json::<User>(user_key(id))? {
            Some(user) if user.active => Ok(user),
            Some(_) => Err(Failure::reject(format!("user {id} is deactivated"))),
            None => Err(Failure::reject(format!("no user {id} is registered"))),
        }
    };
    let check_email = |email: &str| {
        if is_email(email) {
            Ok(())
        } else {
            Err(Failure::reject(format!(
                "{email:?} is not an email address"
            )))
        }
    };
    let emitted = match command {
        Command::Register {
            user_id,
            name,
            email,
        } => {
            if ctx.get(user_key(&user_id)).is_some() {
                return Err(Failure::reject(format!(
                    "user {user_id} is registered already"
                )));
            }
            check_email(&email)?;
            if name.trim().is_empty() {
                return Err(Failure::reject(format!("user {user_id} needs a name")));
            }
            ctx.set_json(
                user_key(&user_id),
                &User {
                    active: true,
                    email: email.clone(),
                },
            );
            UserEvent::Registered {
                user_id,
                name,
                email,
                at_ms,
            }
        }
        Command::ChangeEmail { user_id, email } => {
            let user = known(ctx, &user_id)?;
            check_email(&email)?;
            if user.email == email {
                return Err(Failure::reject(format!(
                    "user {user_id} has that email already"
                )));
            }
            ctx.set_json(
                user_key(&user_id),
                &User {
                    active: true,
                    email: email.clone(),
                },
            );
            UserEvent::EmailChanged {
                user_id,
                email,
                at_ms,
            }
        }
        Command::Rename { user_id, name } => {
            known(ctx, &user_id)?;
            if name.trim().is_empty() {
                return Err(Failure::reject(format!("user {user_id} needs a name")));
            }
            UserEvent::Renamed {
                user_id,
                name,
                at_ms,
            }
        }
        Command::Deactivate { user_id } => {
            let user = known(ctx, &user_id)?;
            ctx.set_json(
                user_key(&user_id),
                &User {
                    active: false,
                    ..user
                },
            );
            UserEvent::Deactivated { user_id, at_ms }
        }
    };
    ctx.emit_json(EVENTS, Some(emitted.user_id()), &emitted);
    Ok(())
}

fn on_event(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let user_event: UserEvent = event.json()?;
    let id = user_event.user_id().to_owned();
    let mut view: UserView = ctx.get_json(&id)?.unwrap_or_default();
    match user_event {
        UserEvent::Registered {
            user_id,
            name,
            email,
            at_ms,
        } => {
            view = UserView {
                user_id,
                name,
                email,
                active: true,
                registered_at_ms: at_ms,
                updated_at_ms: at_ms,
                version: 0,
            };
        }
        UserEvent::EmailChanged { email, at_ms, .. } => {
            view.email = email;
            view.updated_at_ms = at_ms;
        }
        UserEvent::Renamed { name, at_ms, .. } => {
            view.name = name;
            view.updated_at_ms = at_ms;
        }
        UserEvent::Deactivated { at_ms, .. } => {
            view.active = false;
            view.updated_at_ms = at_ms;
        }
    }
    if view.user_id.is_empty() {
        return Err(Failure::reject(format!(
            "an event of user {id} came before the user was registered"
        )));
    }
    view.version += 1;
    ctx.set_json(&id, &view);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use streamfn::testing::TestHost;

    use super::*;

    fn command(host: &mut TestHost, value: serde_json::Value, at: i64) -> Result<(), Failure> {
        let user = value["user_id"].as_str().unwrap_or("-").to_owned();
        let event = host.event(COMMANDS, Some(&user), &value.to_string(), at);
        host.handle(handle, &event)
    }

    #[test]
    fn commands_that_apply_become_events_and_the_events_build_the_view() {
        let mut commands = TestHost::new();
        for (at, c) in [
            (
                1,
                json!({"command": "register", "user_id": "u1", "name": "Ada", "email": "ada@example.org"}),
            ),
            (
                2,
                json!({"command": "change_email", "user_id": "u1", "email": "ada@lovelace.dev"}),
            ),
            (
                3,
                json!({"command": "rename", "user_id": "u1", "name": "Ada L."}),
            ),
            (4, json!({"command": "deactivate", "user_id": "u1"})),
        ] {
            command(&mut commands, c, at).expect("applies");
        }
        let events: Vec<UserEvent> = commands.outputs_json(EVENTS);
        assert_eq!(events.len(), 4);
        let mut views = TestHost::new();
        for (at, e) in events.iter().enumerate() {
            let event = views.event(
                EVENTS,
                Some("u1"),
                &serde_json::to_string(e).expect("JSON"),
                at as i64,
            );
            views.handle(handle, &event).expect("applied");
        }
        let view: UserView = views.state_json("u1").expect("a view");
        assert_eq!(
            view,
            UserView {
                user_id: "u1".into(),
                name: "Ada L.".into(),
                email: "ada@lovelace.dev".into(),
                active: false,
                registered_at_ms: 1,
                updated_at_ms: 4,
                version: 4,
            }
        );
    }

    #[test]
    fn commands_that_do_not_apply_are_rejected_with_why() {
        let mut host = TestHost::new();
        let register = json!({"command": "register", "user_id": "u1", "name": "Ada", "email": "ada@example.org"});
        command(&mut host, register.clone(), 1).expect("first");
        let cases = [
            (register, "registered already"),
            (
                json!({"command": "change_email", "user_id": "u2", "email": "x@y.z"}),
                "no user u2",
            ),
            (
                json!({"command": "change_email", "user_id": "u1", "email": "not-an-email"}),
                "not an email",
            ),
            (
                json!({"command": "change_email", "user_id": "u1", "email": "ada@example.org"}),
                "that email already",
            ),
            (
                json!({"command": "rename", "user_id": "u1", "name": " "}),
                "needs a name",
            ),
            (json!({"command": "promote", "user_id": "u1"}), "expected"),
        ];
        for (value, said) in cases {
            let err = command(&mut host, value, 2).expect_err(said);
            assert!(err.reason().contains(said), "{said}: {}", err.reason());
        }
        command(
            &mut host,
            json!({"command": "deactivate", "user_id": "u1"}),
            3,
        )
        .expect("deactivated");
        let err = command(
            &mut host,
            json!({"command": "rename", "user_id": "u1", "name": "B"}),
            4,
        )
        .expect_err("deactivated");
        assert!(err.reason().contains("deactivated"), "{}", err.reason());
        assert_eq!(host.outputs_json::<UserEvent>(EVENTS).len(), 2);
    }
}
