//! The conformance function in Rust: one command per event, exercising every import and
//! every outcome, as `tests/conformance/SPEC.md` specifies. Its outputs are the reference
//! the other languages' builds must match byte for byte.

use streamfn::{Context, Event, Failure, Level, Output, Timer};

/// Runs the event's command.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let command = event.value_str().unwrap_or_default();
    let (op, rest) = command.split_once(' ').unwrap_or((command, ""));
    let key = event.key.as_deref();
    let out = |ctx: &mut Context, text: String| ctx.emit("out", key, text);
    match op {
        "set" => {
            let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
            ctx.set(k, v);
            out(ctx, format!("set {k}"));
        }
        "get" => {
            let value = ctx
                .get(rest)
                .map_or("-".to_owned(), |v| String::from_utf8_lossy(&v).into_owned());
            out(ctx, format!("get {rest}={value}"));
        }
        "del" => {
            ctx.delete(rest);
            out(ctx, format!("del {rest}"));
        }
        "scan" => {
            let mut text = format!("scan {rest}:");
            for (k, v) in ctx.scan(rest, usize::MAX) {
                text.push_str(&format!(
                    " {}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                ));
            }
            out(ctx, text);
        }
        "emit" => {
            let (topic, value) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut output = Output::new(topic).value(value).header("h", "v");
            output.key = key.map(<[u8]>::to_vec);
            ctx.send(&output);
        }
        "config" => {
            let value = ctx.config(rest).unwrap_or_else(|| "-".to_owned());
            out(ctx, format!("config {rest}={value}"));
        }
        "log" => {
            let (level, message) = rest.split_once(' ').unwrap_or((rest, ""));
            let level = match level {
                "debug" => Level::Debug,
                "warn" => Level::Warn,
                "error" => Level::Error,
                _ => Level::Info,
            };
            ctx.log(level, message);
            out(
                ctx,
                format!("log {}", rest.split(' ').next().unwrap_or_default()),
            );
        }
        "timer" => {
            let (k, at) = rest.split_once(' ').unwrap_or((rest, ""));
            let at: i64 = at
                .parse()
                .map_err(|_| Failure::reject(format!("bad time: {at}")))?;
            ctx.schedule_timer(k, at);
            out(ctx, format!("timer {k} {at}"));
        }
        "cancel" => {
            ctx.cancel_timer(rest);
            out(ctx, format!("cancel {rest}"));
        }
        "time" => out(
            ctx,
            format!("time {} {}", event.timestamp_ms, event.stream_time_ms),
        ),
        "meta" => {
            let key = event.key_str().unwrap_or("-");
            out(
                ctx,
                format!(
                    "meta {} {} {} {key}",
                    event.topic, event.partition, event.offset
                ),
            );
        }
        "headers" => {
            let mut text = "headers".to_owned();
            for h in &event.headers {
                text.push_str(&format!(" {}={}", h.key, String::from_utf8_lossy(&h.value)));
            }
            out(ctx, text);
        }
        "reject" => return Err(Failure::reject(rest)),
        "retry" => return Err(Failure::retry(rest)),
        "trap" => panic!("trap requested"),
        _ => return Err(Failure::reject(format!("unknown command: {command}"))),
    }
    Ok(())
}

/// Reports a fired timer.
pub fn on_timer(timer: &Timer, ctx: &mut Context) -> Result<(), Failure> {
    let key = String::from_utf8_lossy(&timer.key).into_owned();
    ctx.emit(
        "out",
        Some(&timer.key),
        format!("fired {key} {}", timer.at_ms),
    );
    Ok(())
}

streamfn::export!(handle, timers = on_timer);
