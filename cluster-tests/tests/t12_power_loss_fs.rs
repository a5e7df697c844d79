//! The power-loss filesystem (`lazyfs`), mounted for real: after a power cut only what was made
//! durable is left. Data needs an fsync of its file; names need an fsync of their directory
//! (a new file's own name also an fsync of the file, as on ext4).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use cluster::chaos::power::LazyMounts;

/// The node id the mount is filed under.
const NODE: u64 = 1;

/// Writes `content` to a new file at `path`; with `fsync`, syncs the file.
fn create(path: &Path, content: &[u8], fsync: bool) {
    let mut file = File::create(path).expect("creating a file");
    file.write_all(content).expect("writing");
    if fsync {
        file.sync_all().expect("fsync of the file");
    }
}

/// fsync of the directory `dir`.
fn sync_dir(dir: &Path) {
    File::open(dir)
        .expect("opening the directory")
        .sync_all()
        .expect("fsync of the directory");
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("listing")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_power_cut_keeps_only_what_was_fsynced() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let mut power = LazyMounts::new(PathBuf::from(env!("CARGO_BIN_EXE_lazyfs")));
    power
        .mount(NODE, &data)
        .expect("mounting the power-loss filesystem");

    eprintln!("--- write: some durably, some not");
    create(&data.join("durable"), b"kept", true);
    create(&data.join("renamed-durably"), b"r1", true);
    create(&data.join("renamed-lazily"), b"r2", true);
    create(&data.join("unlinked-lazily"), b"u", true);
    fs::create_dir(data.join("dir-durable")).expect("mkdir");
    sync_dir(&data);
    {
        let mut file = OpenOptions::new()
            .append(true)
            .open(data.join("durable"))
            .expect("opening for append");
        file.write_all(b" and this is lost").expect("appending");
    }
    create(&data.join("dir-durable/inner"), b"inner", true);
    create(
        &data.join("new-file-fsynced"),
        b"fsynced, its dir not",
        true,
    );
    create(&data.join("new-file-name-only"), b"gone", false);
    fs::rename(
        data.join("renamed-durably"),
        data.join("renamed-durably-to"),
    )
    .expect("rename");
    sync_dir(&data);
    create(&data.join("new-file-unsynced"), b"gone", false);
    fs::rename(data.join("renamed-lazily"), data.join("renamed-lazily-to")).expect("rename");
    fs::remove_file(data.join("unlinked-lazily")).expect("unlink");
    fs::create_dir(data.join("dir-lazy")).expect("mkdir");
    assert_eq!(
        fs::read(data.join("durable")).expect("reading back"),
        b"kept and this is lost",
        "the running system sees every write"
    );

    eprintln!("--- cut the power, mount again");
    power.cut(NODE).expect("the power cut");
    power.restore(NODE).expect("mounting what survived");

    assert_eq!(
        names(&data),
        [
            "dir-durable",
            "durable",
            "new-file-fsynced",
            "new-file-name-only",
            "renamed-durably-to",
            "renamed-lazily",
            "unlinked-lazily",
        ]
    );
    let read = |name: &str| fs::read(data.join(name)).expect("reading a survivor");
    assert_eq!(read("durable"), b"kept", "unsynced appended data is lost");
    assert_eq!(read("new-file-fsynced"), b"fsynced, its dir not");
    assert_eq!(
        read("new-file-name-only"),
        b"",
        "a dir fsync keeps a new name (with every earlier name change), not the file's data"
    );
    assert_eq!(
        read("renamed-lazily"),
        b"r2",
        "a rename without a dir fsync is undone"
    );
    assert_eq!(
        read("unlinked-lazily"),
        b"u",
        "an unlink without a dir fsync is undone"
    );
    assert_eq!(read("dir-durable/inner"), b"inner");

    eprintln!("--- a truncation is lost too, and synced it stays");
    {
        let file = OpenOptions::new()
            .write(true)
            .open(data.join("durable"))
            .expect("opening");
        file.set_len(1).expect("truncating");
    }
    create(&data.join("durable-2"), b"two", true);
    sync_dir(&data);
    power.cut(NODE).expect("the power cut");
    power.restore(NODE).expect("mounting what survived");
    assert_eq!(read("durable"), b"kept");
    assert_eq!(read("durable-2"), b"two");
    {
        let file = OpenOptions::new()
            .write(true)
            .open(data.join("durable"))
            .expect("opening");
        file.set_len(2).expect("truncating");
        file.sync_data().expect("fdatasync");
    }
    power.cut(NODE).expect("the power cut");
    power.restore(NODE).expect("mounting what survived");
    assert_eq!(read("durable"), b"ke");
    assert!(power.unmount_all().is_empty(), "unmounting cleanly");
}
