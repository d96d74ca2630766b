//! The one-time setup code: proof that whoever sets the first admin password is the box's owner
//! (issue 11, finding 2: anyone on the LAN — or a DNS-rebinding page in a LAN user's browser —
//! could take a fresh box by visiting it first).
//!
//! While no admin password exists, the box keeps a random code in `cdrbox.setup-code` beside
//! the password file (mode 0600), created once, atomically, by whichever comes first: `cdrbox
//! run` at start (it logs the code and shows it on the OLED), the web page's first-visit form,
//! `cdrbox demo` (its banner) or `cdrbox setup-code --config F` (prints it). The first-visit
//! form must send it; a wrong code counts as a failed login. The file is removed when the admin
//! password is set.
//!
//! Codes are 8 characters from a 32-letter alphabet without look-alikes (no 0, O, 1, I), shown
//! as `ABCD-EFGH`: 40 bits, typed from the display in a few seconds; with the login limit
//! (5 per minute per address) and a box-wide limit on wrong codes, guessing is hopeless.

use std::io;
use std::path::{Path, PathBuf};

/// The letters a code is made of.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// `<dir of the password file>/cdrbox.setup-code`.
pub fn path_for(passwd_path: &Path) -> PathBuf {
    passwd_path.with_file_name("cdrbox.setup-code")
}

/// A fresh code from `random`, formatted `ABCD-EFGH`.
pub fn new_code(random: &dyn Fn(&mut [u8]) -> io::Result<()>) -> io::Result<String> {
    let mut b = [0u8; 8];
    random(&mut b)?;
    let letters: String = b
        .iter()
        .map(|x| ALPHABET[(*x as usize) % ALPHABET.len()] as char)
        .collect();
    Ok(format!("{}-{}", &letters[..4], &letters[4..]))
}

/// The code as a person may type it (any case, with or without the dash or spaces), reduced to
/// its letters.
pub fn normalise(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// True when `typed` is `code` (constant time over the letters).
pub fn matches(code: &str, typed: &str) -> bool {
    let (a, b) = (normalise(code), normalise(typed));
    !a.is_empty() && super::auth::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// The current code, if a setup is pending (the file exists and holds one).
pub fn current(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let code = text.trim();
    (code.len() == 9 && normalise(code).len() == 8).then(|| code.to_string())
}

/// The pending code, made now if there is none. Atomic across processes: the code is written
/// to a temporary file of our own (`O_EXCL`, mode 0600) and linked into place, which fails if
/// another process got there first — then theirs is the code.
pub fn ensure(path: &Path, random: &dyn Fn(&mut [u8]) -> io::Result<()>) -> io::Result<String> {
    if let Some(code) = current(path) {
        return Ok(code);
    }
    let code = new_code(random)?;
    let tmp = super::auth::write_private_temp(path, format!("{code}\n").as_bytes())?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(code)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => current(path).ok_or_else(|| {
            io::Error::other(format!("{} exists but holds no code", path.display()))
        }),
        Err(e) => Err(e),
    }
}

/// Forgets the code (the admin password is set).
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(target: "cdrbox::web", path = %path.display(), error = %e, "cannot remove the setup code")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl Fn(&mut [u8]) -> io::Result<()> {
        let n = std::sync::atomic::AtomicU8::new(0);
        move |b: &mut [u8]| {
            for x in b.iter_mut() {
                *x = n.fetch_add(7, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        }
    }

    #[test]
    fn codes_are_typeable_and_forgiving() {
        let code = new_code(&counter()).unwrap();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)),
            "{code}"
        );
        assert!(matches("ABCD-EFGH", "abcdefgh"));
        assert!(matches("ABCD-EFGH", " abcd efgh "));
        assert!(!matches("ABCD-EFGH", "ABCD-EFGJ"));
        assert!(!matches("ABCD-EFGH", "ABCD-EFG"));
        assert!(!matches("", ""));
    }

    #[test]
    fn ensure_makes_one_code_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("cdrbox.passwd"));
        assert_eq!(current(&path), None);
        let a = ensure(&path, &counter()).unwrap();
        let b = ensure(&path, &|b: &mut [u8]| {
            b.fill(0xff);
            Ok(())
        })
        .unwrap();
        assert_eq!(a, b, "the second caller gets the first code");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Concurrent first callers: one code for all.
        remove(&path);
        let codes: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || {
                        ensure(path, &move |b: &mut [u8]| {
                            b.fill(i * 31 + 1);
                            Ok(())
                        })
                        .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(codes.iter().all(|c| *c == codes[0]), "{codes:?}");
        assert_eq!(current(&path).as_deref(), Some(codes[0].as_str()));
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left");
    }
}
