//! `corelog tune` end to end: a tiny real device run, a system-only run against a fake
//! sysroot with `--apply`, and the refusal of a memory filesystem.

use std::path::{Path, PathBuf};

use corelog_tuning::{run, Profile, TuneArgs};

/// A directory on the same filesystem as the build (never tmpfs, unlike some /tmp).
fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn put(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, format!("{content}\n")).unwrap();
}

#[test]
fn tiny_device_run_writes_a_profile_that_loads() {
    let dir = scratch_dir();
    let data = dir.path().join("data");
    let json = dir.path().join("report.json");
    // A broker's data dir, including names like the probe's own: all must survive.
    let theirs = [
        "orders-0/00000000000000000000.log",
        "corelog-catalog.json",
        ".corelog-tune-1.scratch",
        ".corelog-tune-1-2.sync",
        "tuning.toml.tmp",
    ];
    for f in theirs {
        put(&data, f, "keep");
    }
    let args = TuneArgs {
        data_dir: Some(data.clone()),
        point_ms: 20,
        file_mib: 8,
        json: Some(json.clone()),
        ..TuneArgs::default()
    };
    assert_eq!(run(&args), Ok(0));
    let path = Profile::default_path(&data);
    let profile = Profile::load(&path).unwrap();
    profile.validate().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[measured]") && text.contains("fsync_after_1m"),
        "{text}"
    );

    // The profile is added, the scratch files are gone, and nothing else was touched.
    let mut left: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    left.sort();
    let mut want: Vec<PathBuf> = [
        "orders-0",
        "corelog-catalog.json",
        ".corelog-tune-1.scratch",
        ".corelog-tune-1-2.sync",
        "tuning.toml.tmp",
        "tuning.toml",
    ]
    .iter()
    .map(|f| data.join(f))
    .collect();
    want.sort();
    assert_eq!(left, want);
    for f in theirs {
        assert_eq!(
            std::fs::read_to_string(data.join(f)).unwrap(),
            "keep\n",
            "{f}"
        );
    }

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["disk_error"].is_null());
    assert_eq!(
        report["choice"]["profile"]["ring_depth"].as_u64(),
        Some(profile.ring_depth as u64)
    );
    assert_eq!(report["findings"].as_array().unwrap().len(), 9);
}

#[test]
fn system_only_run_applies_into_a_fake_sysroot() {
    let root = scratch_dir();
    let r = root.path();
    put(r, "proc/sys/vm/swappiness", "60");
    put(
        r,
        "proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1 0 -2",
    );
    put(
        r,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never",
    );
    put(
        r,
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "powersave",
    );
    put(r, "proc/sys/kernel/io_uring_disabled", "2");
    let json = r.join("report.json");
    let args = TuneArgs {
        data_dir: Some(r.join("data")),
        skip_disk: true,
        apply: true,
        sysroot: r.to_path_buf(),
        shards: Some(1),
        json: Some(json.clone()),
        ..TuneArgs::default()
    };
    assert_eq!(run(&args), Ok(0), "findings are not errors");
    let read = |rel: &str| std::fs::read_to_string(r.join(rel)).unwrap();
    assert_eq!(read("proc/sys/vm/swappiness"), "1\n");
    assert_eq!(
        read("sys/kernel/mm/transparent_hugepage/enabled"),
        "madvise\n"
    );
    assert_eq!(
        read("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "performance\n"
    );
    // io_uring policy is never applied.
    assert_eq!(read("proc/sys/kernel/io_uring_disabled"), "2\n");
    assert!(
        !r.join("data").exists(),
        "a system-only run creates nothing"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["applied"].as_array().unwrap().len(), 3);
    let after = report["findings_after_apply"].as_array().unwrap();
    let status = |check: &str| {
        after
            .iter()
            .find(|f| f["check"] == check)
            .map(|f| f["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("swappiness").as_deref(), Some("ok"));
    assert_eq!(status("thp").as_deref(), Some("ok"));
    assert_eq!(status("io_uring").as_deref(), Some("fail"));
}

#[test]
fn dry_run_changes_nothing() {
    let root = scratch_dir();
    let r = root.path();
    put(r, "proc/sys/vm/swappiness", "60");
    let args = TuneArgs {
        data_dir: Some(r.join("data")),
        skip_disk: true,
        sysroot: r.to_path_buf(),
        ..TuneArgs::default()
    };
    assert_eq!(run(&args), Ok(0));
    assert_eq!(
        std::fs::read_to_string(r.join("proc/sys/vm/swappiness")).unwrap(),
        "60\n"
    );
}

#[test]
fn bad_arguments_are_errors() {
    let args = TuneArgs {
        point_ms: 0,
        skip_disk: true,
        ..TuneArgs::default()
    };
    assert!(run(&args).unwrap_err().contains("--point-ms"));
    let args = TuneArgs {
        file_mib: 1,
        skip_disk: true,
        ..TuneArgs::default()
    };
    assert!(run(&args).unwrap_err().contains("--file-mib"));
}

#[test]
fn memory_filesystem_is_refused() {
    let shm = Path::new("/dev/shm");
    let on_tmpfs = corelog_tuning::device::filesystem_of(shm).is_ok_and(|f| f.is_memory());
    if !on_tmpfs {
        eprintln!("skipped: /dev/shm is not a tmpfs here");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let args = TuneArgs {
        data_dir: Some(dir.path().to_path_buf()),
        point_ms: 10,
        file_mib: 8,
        ..TuneArgs::default()
    };
    let e = run(&args).unwrap_err();
    assert!(e.contains("tmpfs") && e.contains("--skip-disk"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
