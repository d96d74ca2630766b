//! Issue 11 item 5: a saved config (it holds the AMI secret) and its `.bak` get their mode from
//! the save, not from the umask. Its own test binary, because the umask is per process.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cdrbox::web::settings::save_atomic;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_umask_never_opens_a_saved_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cdrbox.toml");
    let bak = dir.path().join("cdrbox.toml.bak");
    // SAFETY: umask(2) only changes this test process's file-creation mask.
    let old = unsafe { libc::umask(0) };
    save_atomic(&p, "a = 1\n").unwrap();
    assert_eq!(mode(&p), 0o600, "new file under umask 000");
    save_atomic(&p, "a = 2\n").unwrap();
    assert_eq!((mode(&p), mode(&bak)), (0o600, 0o600));
    // An admin's 0640 (root:cdrbox) survives a save under a strict umask, and so does the text.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    unsafe { libc::umask(0o077) };
    save_atomic(&p, "a = 3\n").unwrap();
    assert_eq!((mode(&p), mode(&bak)), (0o640, 0o640));
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), "a = 2\n");
    unsafe { libc::umask(old) };
}
