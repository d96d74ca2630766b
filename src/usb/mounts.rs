//! The mount table (`/proc/self/mounts` format, see proc_pid_mounts(5)): a pure parser, the filter
//! to sticks under `[usb] mount_root`, and the filesystem classification.
//!
//! No I/O here: the watcher reads the file and hands the text in, so tests can present any table.

use std::path::{Component, Path, PathBuf};

/// Filesystem families of a stick, as far as the export cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsKind {
    /// FAT12/16/32 (`vfat`): every stick from the shop. Files are limited to 4 GiB − 1.
    Vfat,
    /// exFAT (`exfat`, kernel driver since 5.7).
    Exfat,
    /// ext4 (also accepted: `ext2`/`ext3`, driven by the same kernel code).
    Ext4,
    /// Anything else (`ntfs3`, `iso9660`, `fuseblk`, …): named in the status message.
    Other(String),
}

impl FsKind {
    /// Classifies the `fstype` column.
    pub fn classify(fstype: &str) -> FsKind {
        match fstype {
            "vfat" | "msdos" | "fat" => FsKind::Vfat,
            "exfat" => FsKind::Exfat,
            "ext4" | "ext3" | "ext2" => FsKind::Ext4,
            other => FsKind::Other(other.to_owned()),
        }
    }

    /// Whether the box writes exports to this filesystem.
    pub fn is_supported(&self) -> bool {
        !matches!(self, FsKind::Other(_))
    }
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The device (`/dev/sda1`), unescaped.
    pub device: String,
    /// Where it is mounted, unescaped (`\040` → space).
    pub mount_point: PathBuf,
    /// The `fstype` column as written (`vfat`).
    pub fstype: String,
    /// The options column split at commas (`rw`, `nosuid`, `uid=999`, …).
    pub options: Vec<String>,
}

impl MountEntry {
    pub fn kind(&self) -> FsKind {
        FsKind::classify(&self.fstype)
    }

    /// Mounted read-only (`ro` in the options).
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
/// backslash; see `seq_escape` / `mangle` in fs/proc_namespace.c). A backslash not followed by
/// three octal digits is kept as it is. Bytes that are not UTF-8 are replaced (U+FFFD): a mount
/// point with such a name is still found, only its shown name differs.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let d = &b[i + 1..i + 4];
            if d.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (d[0] - b'0') as u32 * 64 + (d[1] - b'0') as u32 * 8 + (d[2] - b'0') as u32;
                if v <= 255 {
                    out.push(v as u8);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one line; `None` for a line with fewer than four fields (blank or damaged lines are
/// skipped rather than failing the whole table).
pub fn parse_line(line: &str) -> Option<MountEntry> {
    let mut f = line.split_ascii_whitespace();
    let device = unescape(f.next()?);
    let mount_point = PathBuf::from(unescape(f.next()?));
    let fstype = unescape(f.next()?);
    let options = f.next()?.split(',').map(str::to_owned).collect();
    Some(MountEntry {
        device,
        mount_point,
        fstype,
        options,
    })
}

/// Parses a whole table, in its order (the kernel lists mounts in the order they were made).
pub fn parse_table(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// Lexically normalises a path (drops `.` and resolves `..` without touching the disk), so
/// `/media/cdrbox/` and `/media/./cdrbox` compare equal.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The sticks: mounts strictly below `root` (the root itself is not a stick: it may be a tmpfs
/// holding the mount points), skipping any mount that holds one of `exclude` (the journal's own
/// stick, when `[storage] path` is on USB, is not an export target). When the same mount point
/// appears twice (mounted over), the later line wins, as it does in the kernel.
pub fn sticks(table: &[MountEntry], root: &Path, exclude: &[PathBuf]) -> Vec<MountEntry> {
    let root = normalise(root);
    let exclude: Vec<PathBuf> = exclude.iter().map(|p| normalise(p)).collect();
    let mut out: Vec<MountEntry> = Vec::new();
    for e in table {
        let mp = normalise(&e.mount_point);
        if mp == root || !mp.starts_with(&root) {
            continue;
        }
        if exclude.iter().any(|x| x.starts_with(&mp)) {
            continue;
        }
        out.retain(|o| normalise(&o.mount_point) != mp);
        out.push(MountEntry {
            mount_point: mp,
            ..e.clone()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_table() {
        let cases = [
            (r"/media/cdrbox/MY\040STICK", "/media/cdrbox/MY STICK"),
            (r"a\011b\012c\134d", "a\tb\nc\\d"),
            (r"no\escape", r"no\escape"),
            (r"short\04", r"short\04"),
            (r"trailing\", r"trailing\"),
            (r"\101\102", "AB"),
            (r"\777", r"\777"),
            (r"\303\251t\303\251", "été"),
            ("", ""),
        ];
        for (i, o) in cases {
            assert_eq!(unescape(i), o, "{i}");
        }
    }

    #[test]
    fn parse_real_lines() {
        let text = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
/dev/mmcblk0p2 / ext4 rw,noatime 0 0
tmpfs /media/cdrbox tmpfs rw,nosuid,nodev 0 0
/dev/sda1 /media/cdrbox/MY\\040STICK vfat rw,nosuid,nodev,noexec,relatime,uid=999,gid=999,fmask=0117,dmask=0007 0 0

garbage
/dev/sdb1 /media/cdrbox/sdb1 ntfs3 ro,nosuid,nodev,noexec 0 0
/dev/sdc1 /media/other/sdc1 exfat rw 0 0
/dev/sdd1 /media/cdrboxx/sdd1 exfat rw 0 0
";
        let t = parse_table(text);
        assert_eq!(t.len(), 7);
        let s = sticks(&t, Path::new("/media/cdrbox/"), &[]);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].device, "/dev/sda1");
        assert_eq!(s[0].mount_point, PathBuf::from("/media/cdrbox/MY STICK"));
        assert_eq!(s[0].kind(), FsKind::Vfat);
        assert!(!s[0].read_only());
        assert!(s[0].options.contains(&"uid=999".to_owned()));
        assert_eq!(s[1].kind(), FsKind::Other("ntfs3".into()));
        assert!(!s[1].kind().is_supported());
        assert!(s[1].read_only());
    }

    #[test]
    fn exclude_journal_stick_and_overmount() {
        let text = "\
/dev/sda1 /media/cdrbox/JOURNAL ext4 rw 0 0
/dev/sdb1 /media/cdrbox/B vfat rw 0 0
/dev/sdc1 /media/cdrbox/B exfat rw 0 0
";
        let t = parse_table(text);
        let s = sticks(
            &t,
            Path::new("/media/./cdrbox"),
            &[PathBuf::from("/media/cdrbox/JOURNAL/cdrbox")],
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].device, "/dev/sdc1");
        assert_eq!(s[0].kind(), FsKind::Exfat);
    }

    #[test]
    fn classify_table() {
        for (t, k) in [
            ("vfat", FsKind::Vfat),
            ("exfat", FsKind::Exfat),
            ("ext4", FsKind::Ext4),
            ("ext3", FsKind::Ext4),
            ("iso9660", FsKind::Other("iso9660".into())),
            ("fuseblk", FsKind::Other("fuseblk".into())),
        ] {
            assert_eq!(FsKind::classify(t), k);
        }
    }
}
