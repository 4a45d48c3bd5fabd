// Shared by the build scripts of the programs started once per message (rqmail-inject,
// rqmail-queue, sendmail, and the .qmail helpers such as preline and forward): links their
// executables statically, which saves about a third of the cost of each start on the
// machines measured in bench/README.md (no dynamic loader,
// no relocations, no libgcc_s constructor probing the CPU).
//
// rustc's own switch, `-C target-feature=+crt-static`, can only be given for the whole build
// (RUSTFLAGS or .cargo/config.toml), where it also applies to proc-macros, which then fail to
// build, and to every test binary. So this links the executables (not the tests) with
// `-static-pie` and a search directory, given to the linker only, where each library rustc
// names (-lc, -lgcc_s, ...) is found as a static archive: linkers look for `libX.so` then
// `libX.a` in each directory in turn, and this one comes before the system's. If the C
// toolchain has no static C library, the program is linked dynamically as before.
//
// Set RQMAIL_DYNAMIC=1 in the build's environment to link them dynamically anyway.

use std::path::{Path, PathBuf};

/// The file the C compiler would link for `name` (`libc.a`, `rcrt1.o`), if there is one.
fn toolchain_file(name: &str) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = std::process::Command::new(cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // cc prints the bare name back when it finds no such file.
    (path.is_absolute() && path.exists()).then_some(path)
}

fn link_statically() -> Result<(), String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let dir = out.join("static-libs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    // What rustc's std asks the linker for on x86_64-unknown-linux-gnu; libgcc_s has no
    // static archive, its static counterparts are libgcc_eh (unwinding) and libgcc.
    // -static-pie starts the program with glibc's rcrt1.o.
    toolchain_file("rcrt1.o").ok_or("no rcrt1.o for -static-pie")?;
    for name in ["c", "util", "rt", "pthread", "m", "dl", "gcc_eh", "gcc"] {
        let archive =
            toolchain_file(&format!("lib{name}.a")).ok_or(format!("no static lib{name}.a"))?;
        link(&archive, &dir.join(format!("lib{name}.a")))?;
    }
    let script = dir.join("libgcc_s.a");
    std::fs::write(&script, "/* GNU ld script */\nINPUT(-lgcc_eh -lgcc)\n")
        .map_err(|e| format!("write {}: {e}", script.display()))?;
    println!("cargo::rustc-link-arg-bins=-static-pie");
    println!("cargo::rustc-link-arg-bins=-L{}", dir.display());
    Ok(())
}

fn link(target: &Path, name: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(name);
    std::os::unix::fs::symlink(target, name).map_err(|e| format!("link {}: {e}", name.display()))
}

fn main() {
    println!("cargo::rerun-if-changed=../../build/static-link.rs");
    println!("cargo::rerun-if-env-changed=RQMAIL_DYNAMIC");
    println!("cargo::rerun-if-env-changed=CC");
    let target = std::env::var("TARGET").unwrap_or_default();
    if std::env::var_os("RQMAIL_DYNAMIC").is_some_and(|v| v == "1")
        || target != "x86_64-unknown-linux-gnu"
    {
        return;
    }
    if let Err(e) = link_statically() {
        println!("cargo::warning=linking dynamically: {e}");
    }
}
