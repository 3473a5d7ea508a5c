//! Stored data is never served changed: a store damaged on disk (a byte changed, bytes
//! flipped at random, a block zeroed, the file lost) gives back every record exactly as
//! written or an error that names it, and the replica never crashes; `fnctl check` names
//! what is damaged and salvages the rest; a damaged compiled component is compiled again;
//! a full disk is reported, and writes resume by themselves once there is space.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, fnctl_path, guest, temp_dir, wait_for};

const PARTITIONS: u32 = 2;
const RECORDS: usize = 1000;
const STORE: &str = "streamfn.redb";

/// The value of record `i`, unique and easy to find in the store file.
fn value_of(i: usize) -> String {
    format!("record-{i:05}-of-the-damage-test")
}

/// A data directory holding `RECORDS` records over `PARTITIONS` partitions of topic `t`,
/// with a function's state and offsets; returns what each (partition, offset) holds.
fn seed(data: &Path) -> BTreeMap<(u32, u64), String> {
    let replica = Replica::start(data);
    replica.ok(&[
        "topics",
        "create",
        "t",
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    let lines: Vec<String> = (0..RECORDS).map(value_of).collect();
    replica.produce("t", &lines, &[]);
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "t", "--output", "out"],
    );
    replica.wait_drained("counter", Duration::from_secs(60));
    let mut held = BTreeMap::new();
    for record in replica.consume("t") {
        let partition = record["partition"].as_u64().expect("partition") as u32;
        let offset = record["offset"].as_u64().expect("offset");
        let value = record["value"].as_str().expect("value").to_owned();
        held.insert((partition, offset), value);
    }
    assert_eq!(held.len(), RECORDS);
    // Stopped cleanly: a store closed after a crash is verified whole when it opens.
    replica.stop();
    held
}

/// Reads every record of `t` through the admin API, a page at a time and one record at a
/// time around failures. Every record must come back exactly as held, or fail with an
/// error naming it; returns the offsets that failed.
fn read_all(replica: &Replica, held: &BTreeMap<(u32, u64), String>) -> Vec<(u32, u64)> {
    let mut failed = Vec::new();
    for partition in 0..PARTITIONS {
        let end = held.keys().filter(|(p, _)| *p == partition).count() as u64;
        let mut offset = 0;
        while offset < end {
            let page = |max: u64| {
                replica.http_get(&format!(
                    "/v1/topics/t/records?partition={partition}&offset={offset}&max={max}"
                ))
            };
            let (status, body) = page(100).expect("the replica answers");
            if status == 200 {
                let page: Value = serde_json::from_str(&body).expect("a page");
                let records = page["records"].as_array().expect("records");
                for record in records {
                    let at = record["offset"].as_u64().expect("offset");
                    assert_eq!(
                        record["value"].as_str(),
                        held.get(&(partition, at)).map(String::as_str),
                        "partition {partition} offset {at} came back changed"
                    );
                }
                let next = page["next"].as_u64().expect("next");
                if next <= offset {
                    break;
                }
                offset = next;
                continue;
            }
            // Pin the failure on one record.
            let (status, body) = page(1).expect("the replica answers");
            if status == 200 {
                let page: Value = serde_json::from_str(&body).expect("a page");
                for record in page["records"].as_array().expect("records") {
                    let at = record["offset"].as_u64().expect("offset");
                    assert_eq!(
                        record["value"].as_str(),
                        held.get(&(partition, at)).map(String::as_str),
                        "partition {partition} offset {at} came back changed"
                    );
                }
                offset = page["next"].as_u64().expect("next").max(offset + 1);
                continue;
            }
            assert!(
                body.contains("damaged")
                    && (body
                        .contains(&format!("record {offset} of topic t partition {partition}"))
                        || body.contains("a page of the store")),
                "a failed read names what is damaged: {status} {body}"
            );
            failed.push((partition, offset));
            offset += 1;
        }
    }
    failed
}

/// Where `needle` is in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the value is in the store file")
}

/// `fnctl args`, run as a user would, with nothing to talk to.
fn fnctl(args: &[&str]) -> std::process::Output {
    Command::new(fnctl_path())
        .args(args)
        .output()
        .expect("fnctl runs")
}

#[test]
fn a_changed_byte_of_a_record_is_an_error_naming_its_batch_and_check_salvages_the_rest() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let held = seed(&data);
    let (&(partition, offset), _) = held
        .iter()
        .find(|(_, v)| **v == value_of(500))
        .expect("record 500");
    let store = data.join(STORE);
    let mut bytes = std::fs::read(&store).expect("the store");
    // Record 500 becomes record 600, which exists too: only its checksum tells.
    let at = find(&bytes, value_of(500).as_bytes()) + "record-00".len();
    bytes[at] = b'6';
    std::fs::write(&store, &bytes).expect("damage the store");

    // The records stored in one batch with record 500 are lost with it, and only those.
    let replica = Replica::start(&data);
    let failed = read_all(&replica, &held);
    replica.stop();
    assert!(failed.contains(&(partition, offset)), "{failed:?}");
    let first = failed[0].1;
    assert_eq!(
        failed,
        (first..first + failed.len() as u64)
            .map(|o| (partition, o))
            .collect::<Vec<_>>(),
        "one run of one partition"
    );
    // A batch holds 16 KiB: about 280 of these records, of the 500 of a partition.
    assert!(failed.len() <= 300, "{} records lost", failed.len());

    let data_arg = data.to_str().expect("utf-8");
    let checked = fnctl(&["check", "--data-dir", data_arg]);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        !checked.status.success(),
        "a damaged store fails the check: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "damaged: record {first} of topic t partition {partition}"
        )),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("--salvage"),
        "the check says how to salvage"
    );

    let saved = dir.path().join("salvaged");
    let salvaged = fnctl(&[
        "check",
        "--data-dir",
        data_arg,
        "--salvage",
        saved.to_str().expect("utf-8"),
    ]);
    let salvage_out = String::from_utf8_lossy(&salvaged.stdout);
    // Topic t less the damaged records, and the function's outputs, one per record.
    assert!(
        salvage_out.contains(&format!(" {} records", 2 * RECORDS - failed.len())),
        "{salvage_out}{}",
        String::from_utf8_lossy(&salvaged.stderr)
    );
    let after = fnctl(&["check", "--data-dir", saved.to_str().expect("utf-8")]);
    assert!(
        after.status.success(),
        "the salvaged store is intact: {}",
        String::from_utf8_lossy(&after.stdout)
    );
    let replica = Replica::start(&saved);
    let mut rest = held.clone();
    rest.retain(|at, _| !failed.contains(at));
    let mut read = BTreeMap::new();
    for record in replica.consume("t") {
        read.insert(
            (
                record["partition"].as_u64().expect("partition") as u32,
                record["offset"].as_u64().expect("offset"),
            ),
            record["value"].as_str().expect("value").to_owned(),
        );
    }
    assert_eq!(read, rest, "every intact record is salvaged, at its offset");
    assert!(
        replica.ok(&["list"]).contains("counter"),
        "deployments are salvaged"
    );
}

/// A tiny deterministic generator, so that a failing trial can be run again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Starts a replica on a damaged store: it may refuse to start, saying why, but it never
/// crashes; if it starts, every read is exact or an error naming what is damaged.
fn survives(data: &Path, held: &BTreeMap<(u32, u64), String>, what: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let log = data.with_extension("log");
    let mut serve = Command::new(fnctl_path())
        .args([
            "serve",
            "--admin-listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("fnctl serve");
    let admin = format!("http://127.0.0.1:{port}");
    let get = |path: &str| {
        ureq::get(format!("{admin}{path}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .ok()
            .map(|r| r.status().as_u16())
    };
    let started = wait_for(
        Duration::from_secs(30),
        "the replica to start or stop",
        || {
            if let Ok(Some(status)) = serve.try_wait() {
                return Some(Err(status));
            }
            get("/healthz").map(|_| Ok(()))
        },
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    match started {
        Err(status) => {
            eprintln!(
                "{what}: refused to start: {}",
                text().lines().next().unwrap_or_default()
            );
            assert_eq!(
                status.code(),
                Some(1),
                "{what}: a refusal, not a crash:\n{}",
                text()
            );
            assert!(
                text().contains("error:"),
                "{what}: it says why:\n{}",
                text()
            );
        }
        Ok(()) => {
            let harness = streamfn_demo::replica::Replica::attach(&fnctl_path(), &admin);
            let replica = Replica::from(harness);
            let failed = read_all(&replica, held);
            eprintln!(
                "{what}: started; {} of {} records failed to read, naming themselves",
                failed.len(),
                held.len()
            );
            assert_eq!(
                get("/healthz"),
                Some(200),
                "{what}: the replica still runs:\n{}",
                text()
            );
            let _ = serve.kill();
        }
    }
    let _ = serve.wait();
}

#[test]
fn flipped_or_zeroed_bytes_never_come_back_as_data_nor_crash_the_replica() {
    let dir = temp_dir();
    let pristine = dir.path().join("pristine");
    let held = seed(&pristine);
    let store = std::fs::read(pristine.join(STORE)).expect("the store");
    let mut rng = Rng(0x5eed_f00d);
    let trial = |name: &str, damage: &dyn Fn(&mut Vec<u8>)| -> PathBuf {
        let data = dir.path().join(name);
        copy_dir(&pristine, &data);
        let mut bytes = store.clone();
        damage(&mut bytes);
        std::fs::write(data.join(STORE), &bytes).expect("damage");
        data
    };
    for n in 0..5 {
        let flips: Vec<(usize, u8)> = (0..32)
            .map(|_| {
                let at = (rng.next() % store.len() as u64) as usize;
                (at, 1 << (rng.next() % 8))
            })
            .collect();
        let data = trial(&format!("flipped-{n}"), &|bytes| {
            for (at, bit) in &flips {
                bytes[*at] ^= bit;
            }
        });
        survives(&data, &held, &format!("32 flipped bytes, trial {n}"));
    }
    // The block that holds record 500, so that zeroing it is sure to hit records.
    let block = find(&store, value_of(500).as_bytes()) & !4095;
    let data = trial("zeroed", &|bytes| {
        let end = (block + 64 * 1024).min(bytes.len());
        bytes[block..end].fill(0);
    });
    survives(&data, &held, "64 KiB zeroed");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a directory");
    for entry in std::fs::read_dir(from).expect("a directory") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("a copy");
        }
    }
}

#[test]
fn a_lost_store_is_refused_at_start_with_what_to_do() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    seed(&data);
    for lose in ["truncated", "deleted"] {
        let store = data.join(STORE);
        match lose {
            "truncated" => std::fs::File::create(&store).map(|_| ()),
            _ => std::fs::remove_file(&store),
        }
        .expect("lose the store");
        let out = fnctl(&[
            "serve",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{lose}: refused");
        assert!(
            stderr.contains("is missing or empty") && stderr.contains("backup"),
            "{lose}: {stderr}"
        );
    }
}

#[test]
fn a_damaged_compiled_component_is_compiled_again() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    {
        let replica = Replica::start(&data);
        replica.ok(&["topics", "create", "in", "--partitions", "1"]);
        replica.deploy(
            &guest("test-counter"),
            "counter",
            &["--input", "in", "--output", "out"],
        );
    }
    let compiled: Vec<PathBuf> = std::fs::read_dir(data.join("compiled"))
        .expect("the cache")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    let mut bytes = std::fs::read(&compiled[0]).expect("entry");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xa5;
    }
    std::fs::write(&compiled[0], &bytes).expect("damage");

    let replica = Replica::start(&data);
    replica.produce("in", &["k a".to_owned()], &["--key", "k"]);
    replica.wait_drained("counter", Duration::from_secs(60));
    assert_eq!(replica.consume("out").len(), 1, "the function ran");
    assert!(
        replica.log_text().lines().any(|l| l.contains("WARN")
            && l.contains("damaged")
            && l.contains("compiling the component again")),
        "{}",
        replica.log_text()
    );
}

/// Unmounts a file system when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Posts records of `bytes` bytes each to topic `in`; the status and body of the answer.
fn post(replica: &Replica, records: usize, bytes: usize) -> (u16, String) {
    let value = "x".repeat(bytes);
    let body = serde_json::json!({
        "records": (0..records).map(|i| serde_json::json!({ "key": format!("k{i}"), "value": value })).collect::<Vec<_>>()
    });
    let mut answer = ureq::post(format!("{}/v1/topics/in/records", replica.admin))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(&body)
        .expect("the replica answers");
    let status = answer.status().as_u16();
    (
        status,
        answer.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn a_full_disk_is_reported_and_writes_resume_once_there_is_space() {
    let dir = temp_dir();
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).expect("a mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=20m", "tmpfs"])
        .arg(&small)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mounting a 20 MiB tmpfs needs root, which this run does not have");
        return;
    }
    let _mounted = Mounted(small.clone());
    let replica = Replica::start(&small.join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "in", "--output", "out"],
    );

    let filler = small.join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).expect("a filler");
        while file.write_all(&[0; 1 << 16]).is_ok() {}
    }
    let mut acknowledged = 0;
    let refused = (0..200)
        .map(|_| post(&replica, 50, 1000))
        .find(|(status, _)| {
            if *status == 200 {
                acknowledged += 50;
            }
            *status != 200
        })
        .expect("a full disk refuses records");
    assert_eq!(refused.0, 507, "a full disk is the server's: {refused:?}");
    assert!(refused.1.contains("cannot take writes"), "{refused:?}");
    let (status, reason) = replica.http_get("/readyz").expect("readyz");
    assert_eq!(status, 503, "not ready while the disk is full: {reason}");
    let deploy = replica.fnctl(&[
        "deploy",
        guest("test-counter").to_str().expect("utf-8"),
        "--name",
        "late",
        "--input",
        "in",
    ]);
    let said = String::from_utf8_lossy(&deploy.stderr);
    assert!(
        !deploy.status.success() && said.contains("the store cannot take writes now"),
        "a deploy on a full disk says why: {said}"
    );
    assert!(
        replica
            .log_text()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("store cannot be written")),
        "the replica says so in its log:\n{}",
        replica.log_text()
    );

    std::fs::remove_file(&filler).expect("make space");
    wait_for(
        Duration::from_secs(30),
        "the replica to be ready again",
        || {
            replica
                .http_get("/readyz")
                .filter(|(status, _)| *status == 200)
        },
    );
    assert_eq!(post(&replica, 50, 1000).0, 200, "writes work again");
    acknowledged += 50;
    replica.wait_drained("counter", Duration::from_secs(60));
    assert_eq!(
        replica.consume("in").len(),
        acknowledged,
        "every acknowledged record, once"
    );
    assert_eq!(
        replica.consume("out").len(),
        acknowledged,
        "each handled once"
    );
}
