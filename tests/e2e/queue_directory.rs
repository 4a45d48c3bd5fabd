//! Issue 12, item 6: rqmail-queue works in the queue directory it checked. Once it has
//! entered `queue` and checked its owner, replacing what the path `queue` names does not
//! redirect its writes.

use rqmail_e2e::{Instance, as_root, command, wait_for};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_queue_swapped_after_the_check_does_not_receive_the_message() {
    let inst = Instance::new("queue-swap");
    let queue = rqmail_qfiles::Queue::new(&inst.home);
    let (env_read, env_write) = nix::unistd::pipe().unwrap();
    let mut child = command(inst.bin("rqmail-queue"))
        .current_dir(&inst.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(env_read))
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"Subject: swapped\n\nfirst half\n")
        .unwrap();
    // mess/ has the message once rqmail-queue has checked the queue and is reading the
    // body: it now waits for the rest, which gives a deterministic moment to swap.
    assert!(
        wait_for(Duration::from_secs(10), || !queue
            .list("mess")
            .unwrap_or_default()
            .is_empty()),
        "rqmail-queue never created its message file"
    );
    let checked = inst.home.join("queue.checked");
    std::fs::rename(inst.home.join("queue"), &checked).unwrap();
    queue.create().unwrap();
    if as_root() {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(inst.home.join("queue"))
            .status()
            .unwrap();
        assert!(status.success());
    }

    stdin.write_all(b"second half\n").unwrap();
    drop(stdin);
    let mut envelope = std::fs::File::from(env_write);
    envelope
        .write_all(b"Falice@example.com\0Tbob@example.com\0\0")
        .unwrap();
    drop(envelope);
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // The whole message is in the directory that was checked, and none of it in the one
    // that took its name.
    for dir in ["intd", "todo"] {
        assert_eq!(
            entries(&checked.join(dir)),
            1,
            "{dir}/ of the checked queue"
        );
        assert_eq!(
            entries(&inst.home.join("queue").join(dir)),
            0,
            "{dir}/ of the new queue"
        );
    }
    assert!(queue.list("mess").unwrap().is_empty());
    let todo = std::fs::read_dir(checked.join("todo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mess = std::fs::read_dir(checked.join("mess"))
        .unwrap()
        .map(|split| split.unwrap().path().join(todo.file_name()))
        .find(|path| path.exists())
        .expect("the message file in the checked queue");
    let body = std::fs::read_to_string(mess).unwrap();
    assert!(body.ends_with("first half\nsecond half\n"), "{body:?}");

    // The legitimate use, through the new queue: rqmail-queue queues there as always.
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com"],
            b"Subject: next\n\nhi\n"
        ),
        0
    );
    assert_eq!(entries(&inst.home.join("queue/todo")), 1);
}
