//! The tuning table: which kernel variant won for each shape class on this device (see
//! `kernels::matmul::tuning_key`). Three sources, the first that knows a class wins:
//! measurements made in this process, the user's cache file for this adapter and driver,
//! and the tables measured on known devices and committed to the repository
//! (`tuning/devices.tuning`, used when the adapter's name matches). A cache file is never
//! required: one that is missing is made, one that is corrupt or was written for another
//! adapter or driver is ignored with a warning, and a failed write only costs a later
//! re-measurement.
//!
//! File format (text, at most 1 MiB, at most 100,000 entries):
//! ```text
//! rezero tuning 1
//! adapter<TAB>NVIDIA H200
//! driver<TAB>NVIDIA 580.159.04
//! matmul/nn/v4/m1024/n1024/k1024/b1<TAB>blocked:128x128x16:8x8
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const HEADER: &str = "rezero tuning 1";
const MAX_FILE_BYTES: u64 = 1 << 20;
const MAX_ENTRIES: usize = 100_000;

/// The tables measured on known devices, committed as their defaults: one after another,
/// each from its header line (a device's `rezero tune --save` file appended).
const COMMITTED: &str = include_str!("../../tuning/devices.tuning");

/// The committed tables, each as its own text.
fn committed_tables() -> Vec<String> {
    let separator = format!("{HEADER}\n");
    COMMITTED
        .split(&separator)
        .filter(|t| !t.trim().is_empty())
        .map(|t| format!("{separator}{t}"))
        .collect()
}

/// The adapter and driver a table was measured on, as wgpu reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceId {
    pub adapter: String,
    pub driver: String,
}

impl DeviceId {
    pub fn of(info: &wgpu::AdapterInfo) -> DeviceId {
        DeviceId {
            adapter: info.name.clone(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }

    /// The cache file's name: the adapter in lowercase letters, digits and dashes, and a
    /// hash of the driver (a new driver starts a new table).
    pub fn file_name(&self) -> String {
        let mut slug = String::new();
        for c in self.adapter.to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        slug.truncate(64);
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let hash = self.driver.bytes().fold(0x811c9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x01000193)
        });
        format!("{}-{hash:08x}.tuning", slug.trim_matches('-'))
    }
}

/// Choices by shape class, and where to keep them.
#[derive(Debug)]
pub struct TuningTable {
    device: DeviceId,
    entries: BTreeMap<String, String>,
    /// Choices a resumed run must repeat (from its checkpoint): they come first and are
    /// never written to the cache file.
    pinned: BTreeMap<String, String>,
    /// The cache file, when the table has one.
    file: Option<PathBuf>,
}

/// A parsed table file: its device and entries.
pub fn parse(text: &str) -> Result<(DeviceId, BTreeMap<String, String>), String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("the first line is not '{HEADER}'"));
    }
    let mut field = |name: &str| -> Result<String, String> {
        match lines.next().and_then(|l| l.split_once('\t')) {
            Some((key, value)) if key == name => Ok(value.to_string()),
            _ => Err(format!("no '{name}' line after the header")),
        }
    };
    let device = DeviceId {
        adapter: field("adapter")?,
        driver: field("driver")?,
    };
    let entries = parse_lines(lines, 4)?;
    Ok((device, entries))
}

/// Choices as 'KEY<TAB>CHOICE' lines (a table file's body; what a checkpoint records).
pub fn format_choices(choices: &BTreeMap<String, String>) -> String {
    choices.iter().map(|(k, c)| format!("{k}\t{c}\n")).collect()
}

/// The inverse of [`format_choices`].
pub fn parse_choices(text: &str) -> Result<BTreeMap<String, String>, String> {
    parse_lines(text.lines(), 1)
}

/// 'KEY<TAB>CHOICE' lines, numbered from `first` in errors.
fn parse_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
    first: usize,
) -> Result<BTreeMap<String, String>, String> {
    let mut entries = BTreeMap::new();
    for (number, line) in lines.enumerate() {
        let well_formed = line.split_once('\t').filter(|(key, choice)| {
            !key.is_empty()
                && !choice.is_empty()
                && !choice.contains('\t')
                && key.chars().all(|c| c.is_ascii_graphic())
                && choice.chars().all(|c| c.is_ascii_graphic())
        });
        let Some((key, choice)) = well_formed else {
            return Err(format!("line {} is not 'KEY<TAB>CHOICE'", number + first));
        };
        if entries.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        entries.insert(key.to_string(), choice.to_string());
    }
    Ok(entries)
}

/// The text of a table file.
pub fn format(device: &DeviceId, entries: &BTreeMap<String, String>) -> String {
    format!(
        "{HEADER}\nadapter\t{}\ndriver\t{}\n{}",
        device.adapter,
        device.driver,
        format_choices(entries)
    )
}

/// Reads a cache file for `device`: its entries, or why it is not used. A missing file
/// is an empty table.
fn read_cache(path: &Path, device: &DeviceId) -> Result<BTreeMap<String, String>, String> {
    let bytes = match crate::files::read_file_capped(path, MAX_FILE_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.to_string()),
    };
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let (found, entries) = parse(&text)?;
    if found != *device {
        return Err(format!(
            "it was measured on '{}' ({}), not on this '{}' ({})",
            found.adapter, found.driver, device.adapter, device.driver
        ));
    }
    Ok(entries)
}

impl TuningTable {
    /// A table for `device`: the committed defaults for its adapter, overlaid with the
    /// cache file in `dir` (when given; see the module docs for what is ignored).
    pub fn open(device: DeviceId, dir: Option<&Path>) -> TuningTable {
        let mut entries = BTreeMap::new();
        for text in committed_tables() {
            if let Ok((found, committed)) = parse(&text) {
                if found.adapter == device.adapter {
                    entries.extend(committed);
                }
            }
        }
        let file = dir.map(|d| d.join(device.file_name()));
        if let Some(path) = &file {
            match read_cache(path, &device) {
                Ok(cached) => entries.extend(cached),
                Err(why) => eprintln!(
                    "warning: ignoring the tuning cache {}: {why}",
                    path.display()
                ),
            }
        }
        TuningTable {
            device,
            entries,
            pinned: BTreeMap::new(),
            file,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pinned
            .get(key)
            .or_else(|| self.entries.get(key))
            .map(String::as_str)
    }

    /// Makes these choices win over every other source for this process, without saving
    /// them (a resumed run repeats the kernels its checkpoint was trained with).
    pub fn pin(&mut self, choices: &BTreeMap<String, String>) {
        self.pinned.extend(choices.clone());
    }

    /// Every choice in force, pinned ones over the rest (what a checkpoint records).
    pub fn in_force(&self) -> BTreeMap<String, String> {
        let mut all = self.entries.clone();
        all.extend(self.pinned.clone());
        all
    }

    /// Records a choice and rewrites the cache file, if there is one, keeping what other
    /// processes added to it meanwhile (a failure to write is a warning: the table still
    /// holds the choice for this process). It replaces a pinned choice of the key too: a
    /// class is measured only when its choice, pinned or not, cannot run here.
    pub fn set(&mut self, key: &str, choice: &str) {
        self.pinned.remove(key);
        self.entries.insert(key.to_string(), choice.to_string());
        if let Some(path) = &self.file {
            let mut merged = read_cache(path, &self.device).unwrap_or_default();
            merged.extend(self.entries.clone());
            if let Err(e) =
                crate::files::write_atomically(path, format(&self.device, &merged).as_bytes())
            {
                eprintln!(
                    "warning: could not save the tuning cache {}: {e}",
                    path.display()
                );
            }
        }
    }

    /// The table as file text (what `rezero tune` saves for committing).
    pub fn to_text(&self) -> String {
        format(&self.device, &self.entries)
    }

    /// The cache file, if the table has one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

/// The user's cache directory for rezero's tuning tables: `$XDG_CACHE_HOME/rezero` or
/// `~/.cache/rezero` (Linux), `~/Library/Caches/rezero` (macOS), `%LOCALAPPDATA%\rezero`
/// (Windows); `None` when none of these is known.
pub fn default_dir() -> Option<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = if cfg!(target_os = "windows") {
        env("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        env("HOME").map(|h| h.join("Library").join("Caches"))
    } else {
        env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("rezero"))
}
