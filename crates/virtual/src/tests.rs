use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rqmail-virtual-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const TABLE: &str = "# users of a.test\n\
    alice:$y$j9T$salt$hash:0:\n\
    bob:$y$j9T$salt$hash2:5000:\n\
    \n\
    alias:postmaster:alice\n\
    alias:team:postmaster,bob,carol@elsewhere.test\n\
    forward:bob:bob@elsewhere.test\n\
    forward:dave:dave@elsewhere.test\n";

#[test]
fn parses_and_expands_aliases_and_forwards() {
    let records = parse(TABLE).unwrap();
    assert_eq!(records.len(), 6);
    assert_eq!(records[0].0, 2);
    let tables = expand(&records).unwrap();
    let m = |n: &str, q| Target::Mailbox {
        name: n.into(),
        quota: q,
    };
    let f = |a: &str| Target::Forward(a.into());
    assert_eq!(tables.boxes["alice"], vec![m("alice", 0)]);
    assert_eq!(
        tables.boxes["bob"],
        vec![m("bob", 5000), f("bob@elsewhere.test")]
    );
    assert_eq!(tables.boxes["dave"], vec![f("dave@elsewhere.test")]);
    assert_eq!(tables.boxes["postmaster"], vec![m("alice", 0)]);
    assert_eq!(
        tables.boxes["team"],
        vec![
            m("alice", 0),
            m("bob", 5000),
            f("bob@elsewhere.test"),
            f("carol@elsewhere.test")
        ]
    );
    assert_eq!(tables.passwd.len(), 2);
    assert!(!tables.passwd.contains_key("dave"));
}

#[test]
fn mistakes_name_their_line() {
    for (text, line, what) in [
        ("alice:h:0:\nbob:h:lots:\n", 2, "quota"),
        ("alice:h:0\n", 1, "four fields"),
        ("#\nAlice:h:0:\n", 2, "bad name"),
        ("alice:h:0:\nalice:h:0:\n", 2, "already defined on line 1"),
        ("alias:x:nobody\n", 1, "no user or alias"),
        ("alice:h:0:\nalias:alice:alice\n", 2, "already defined"),
        (
            "forward:alice:a@b.test\nalias:alice:bob@c.test\n",
            2,
            "both an alias and a user",
        ),
        ("forward:a:not-an-address\n", 1, "bad forward"),
        ("../x:h:0:\n", 1, "bad name"),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(what), "{text:?}: {e}");
    }
    let e = expand(&parse("alias:a:b\nalias:b:a\n").unwrap()).unwrap_err();
    assert!(e.message.contains("loop"), "{e}");
}

#[test]
fn compile_writes_both_cdbs_and_a_mistake_changes_nothing() {
    let dir = scratch("compile");
    let hashes = dir.join("hashes");
    std::fs::create_dir(&hashes).unwrap();
    compile_text(&dir, &hashes, TABLE).unwrap();
    assert_eq!(
        lookup_hash(&hashes, "ALICE").unwrap().as_deref(),
        Some("$y$j9T$salt$hash")
    );
    assert_eq!(lookup_hash(&hashes, "dave").unwrap(), None);
    assert!(
        !dir.join(PASSWD_CDB).exists(),
        "no hashes beside the mailboxes"
    );
    assert!(lookup_box(&dir, "team").unwrap().is_some());
    assert!(lookup_box(&dir, "nobody").unwrap().is_none());
    assert!(lookup_box(&dir, "../etc").unwrap().is_none());
    let boxes = std::fs::read(dir.join(BOXES_CDB)).unwrap();
    assert!(!String::from_utf8_lossy(&boxes).contains("$y$"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(hashes.join(PASSWD_CDB))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "passwd.cdb must not be world-readable");
    let err = compile_text(&dir, &hashes, "carol:h:x:\n").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    assert!(lookup_box(&dir, "alice").unwrap().is_some());
    assert!(lookup_box(&dir, "carol").unwrap().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn names_and_domains_are_safe_path_components() {
    for good in ["alice", "a.b", "x_y+z=1-2"] {
        assert!(valid_name(good), "{good}");
    }
    for bad in ["", ".x", "-x", "a/b", "A", "a b", "..", &"x".repeat(65)] {
        assert!(!valid_name(bad), "{bad}");
    }
    assert!(valid_domain("a.test"));
    for bad in ["", ".", "..", "../x", "a/b"] {
        assert!(!valid_domain(bad), "{bad}");
    }
}
