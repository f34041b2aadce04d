//! util-linux flock(1)'s command line, read as its `getopt_long` reads it:
//! options first, up to the first non-option (or `--`); then FILE or
//! DIRECTORY followed by a command, or `-c COMMAND`; or a descriptor NUMBER.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::numbers::{self, NumberError, Timeout};

/// Wrong options or arguments (`EX_USAGE` from sysexits.h, as flock(1)).
pub const EX_USAGE: i32 = 64;

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(FlockArgs),
    Help,
    Version,
}

/// `flock [options] FILE|DIRECTORY COMMAND...`, `-c COMMAND`, or `NUMBER`.
#[derive(Debug)]
pub struct FlockArgs {
    pub op: Op,
    pub nonblock: bool,
    pub timeout: Option<Timeout>,
    pub conflict_exit_code: i32,
    /// `-o`: the command does not inherit the lock.
    pub close: bool,
    pub no_fork: bool,
    pub verbose: bool,
    pub api: Api,
    pub target: Target,
}

/// What to do to the lock: the last of `-s`, `-x` and `-u` counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Op {
    Shared,
    #[default]
    Exclusive,
    Unlock,
}

/// Which kind of lock: `flock(2)`'s whole-file lock, or with `--fcntl`,
/// `--start` or `--length` an open file description lock on a byte range
/// (`fcntl(F_OFD_SETLK)`), which excludes only locks of its own kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Api {
    #[default]
    Flock,
    /// `length` bytes from `start`; a length of 0 runs to the end of the
    /// file, however long it grows.
    Fcntl { start: u64, length: u64 },
}

/// What to lock, and what to run while it is held.
#[derive(Debug)]
pub enum Target {
    /// A file (created if missing) or a directory, and a command.
    Path { path: PathBuf, command: ToRun },
    /// `flock NUMBER`: a descriptor the shell opened (`9>file`).
    Descriptor(i32),
}

/// The command to run while the lock is held.
#[derive(Debug)]
pub enum ToRun {
    /// `COMMAND [ARGS...]`, run directly.
    Argv { program: OsString, args: Vec<OsString> },
    /// `-c COMMAND`, run through the shell.
    Shell(OsString),
}

/// A usage error: the message to print after `flock: `, and the exit code.
#[derive(Debug)]
pub struct UsageError {
    pub message: String,
    pub code: i32,
    /// Whether to add "Try 'flock --help' for more information.".
    pub try_help: bool,
}

impl UsageError {
    fn new(message: impl Into<String>) -> Self {
        UsageError { message: message.into(), code: EX_USAGE, try_help: false }
    }

    fn with_help(message: impl Into<String>) -> Self {
        UsageError { try_help: true, ..UsageError::new(message) }
    }
}

/// One option, whatever it is spelled as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Shared,
    Exclusive,
    Unlock,
    Nonblock,
    Close,
    NoFork,
    Timeout,
    ConflictExitCode,
    Verbose,
    Fcntl,
    Start,
    Length,
    Help,
    Version,
}

impl Opt {
    fn takes_value(self) -> bool {
        matches!(self, Opt::Timeout | Opt::ConflictExitCode | Opt::Start | Opt::Length)
    }
}

/// flock(1)'s long options; `getopt_long` also takes any unambiguous prefix.
const LONG: &[(&str, Opt)] = &[
    ("shared", Opt::Shared),
    ("exclusive", Opt::Exclusive),
    ("unlock", Opt::Unlock),
    ("nonblocking", Opt::Nonblock),
    ("nonblock", Opt::Nonblock),
    ("nb", Opt::Nonblock),
    ("close", Opt::Close),
    ("no-fork", Opt::NoFork),
    ("timeout", Opt::Timeout),
    ("wait", Opt::Timeout),
    ("conflict-exit-code", Opt::ConflictExitCode),
    ("verbose", Opt::Verbose),
    ("fcntl", Opt::Fcntl),
    ("start", Opt::Start),
    ("length", Opt::Length),
    ("help", Opt::Help),
    ("version", Opt::Version),
];

fn short(letter: char) -> Option<Opt> {
    Some(match letter {
        's' => Opt::Shared,
        'x' | 'e' => Opt::Exclusive,
        'u' => Opt::Unlock,
        'n' => Opt::Nonblock,
        'o' => Opt::Close,
        'F' => Opt::NoFork,
        'w' => Opt::Timeout,
        'E' => Opt::ConflictExitCode,
        'h' => Opt::Help,
        'V' => Opt::Version,
        _ => return None,
    })
}

/// The options seen so far.
#[derive(Default)]
struct Options {
    op: Op,
    nonblock: bool,
    close: bool,
    no_fork: bool,
    verbose: bool,
    timeout: Option<Timeout>,
    conflict_exit_code: Option<i32>,
    api: Api,
}

/// Reads flock(1)'s arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, UsageError> {
    let args: Vec<OsString> = args.into_iter().collect();
    if args.is_empty() {
        return Err(UsageError::with_help("not enough arguments"));
    }
    let mut options = Options::default();
    let mut rest = args.iter();
    let operands = loop {
        let Some(arg) = rest.next() else { break Vec::new() };
        let text = arg.to_string_lossy();
        if text == "--" {
            break rest.cloned().collect();
        }
        let found = if let Some(long) = text.strip_prefix("--") {
            long_option(long, &mut rest)?
        } else if text.len() > 1 && text.starts_with('-') {
            short_options(&text[1..], &mut rest)?
        } else {
            // The first non-option ends the options (getopt's `+`).
            break std::iter::once(arg).chain(rest).cloned().collect();
        };
        for (opt, value) in found {
            if let Some(parsed) = options.apply(opt, value.as_deref())? {
                return Ok(parsed);
            }
        }
    };
    if options.no_fork && options.close {
        return Err(UsageError::new("the --no-fork and --close options are incompatible"));
    }
    let target = target(operands)?;
    Ok(Parsed::Run(FlockArgs {
        op: options.op,
        nonblock: options.nonblock,
        timeout: options.timeout,
        conflict_exit_code: options.conflict_exit_code.unwrap_or(1),
        close: options.close,
        no_fork: options.no_fork,
        verbose: options.verbose,
        api: options.api,
        target,
    }))
}

impl Options {
    /// Records one option; `Some` for `--help` and `--version`, which
    /// answer at once, as flock(1) does.
    fn apply(&mut self, opt: Opt, value: Option<&str>) -> Result<Option<Parsed>, UsageError> {
        let value = value.unwrap_or_default();
        match opt {
            Opt::Shared => self.op = Op::Shared,
            Opt::Exclusive => self.op = Op::Exclusive,
            Opt::Unlock => self.op = Op::Unlock,
            Opt::Nonblock => self.nonblock = true,
            Opt::Close => self.close = true,
            Opt::NoFork => self.no_fork = true,
            Opt::Verbose => self.verbose = true,
            Opt::Timeout => self.timeout = Some(parse_timeout(value)?),
            Opt::ConflictExitCode => self.conflict_exit_code = Some(parse_exit_code(value)?),
            Opt::Fcntl => self.api = self.api.with_range(|_, _| {}),
            Opt::Start => {
                let start = parse_size(value, "invalid as start offset")?;
                self.api = self.api.with_range(|range_start, _| *range_start = start);
            }
            Opt::Length => {
                let length = parse_size(value, "invalid as length of lock range")?;
                self.api = self.api.with_range(|_, range_length| *range_length = length);
            }
            Opt::Help => return Ok(Some(Parsed::Help)),
            Opt::Version => return Ok(Some(Parsed::Version)),
        }
        Ok(None)
    }
}

/// `--name`, `--name=value` or `--name value`, by name or unambiguous prefix.
fn long_option<'a>(
    spelled: &str,
    rest: &mut impl Iterator<Item = &'a OsString>,
) -> Result<Vec<(Opt, Option<String>)>, UsageError> {
    let (name, inline) = match spelled.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (spelled, None),
    };
    let opt = find_long(name)?;
    let value = match (opt.takes_value(), inline) {
        (true, Some(value)) => Some(value),
        (true, None) => match rest.next() {
            Some(value) => Some(value.to_string_lossy().into_owned()),
            None => {
                let message = format!("option '--{name}' requires an argument");
                return Err(UsageError::with_help(message));
            }
        },
        (false, Some(_)) => {
            let message = format!("option '--{name}' doesn't allow an argument");
            return Err(UsageError::with_help(message));
        }
        (false, None) => None,
    };
    Ok(vec![(opt, value)])
}

fn find_long(name: &str) -> Result<Opt, UsageError> {
    if let Some(&(_, opt)) = LONG.iter().find(|(long, _)| *long == name) {
        return Ok(opt);
    }
    let mut matches: Vec<(&str, Opt)> = Vec::new();
    for &(long, opt) in LONG.iter().filter(|(long, _)| !name.is_empty() && long.starts_with(name)) {
        if !matches.iter().any(|&(_, seen)| seen == opt) {
            matches.push((long, opt));
        }
    }
    match matches.as_slice() {
        [(_, opt)] => Ok(*opt),
        [] => Err(UsageError::with_help(format!("unrecognized option '--{name}'"))),
        several => {
            let names: Vec<String> =
                several.iter().map(|(long, _)| format!("'--{long}'")).collect();
            let message =
                format!("option '--{name}' is ambiguous; possibilities: {}", names.join(" "));
            Err(UsageError::with_help(message))
        }
    }
}

/// `-nx`, `-w1`, `-w 1`: letters, the last of which may take a value.
fn short_options<'a>(
    letters: &str,
    rest: &mut impl Iterator<Item = &'a OsString>,
) -> Result<Vec<(Opt, Option<String>)>, UsageError> {
    let mut found = Vec::new();
    for (at, letter) in letters.char_indices() {
        let Some(opt) = short(letter) else {
            return Err(UsageError::with_help(format!("invalid option -- '{letter}'")));
        };
        if !opt.takes_value() {
            found.push((opt, None));
            continue;
        }
        let attached = &letters[at + letter.len_utf8()..];
        let value = if attached.is_empty() {
            match rest.next() {
                Some(value) => value.to_string_lossy().into_owned(),
                None => {
                    let message = format!("option requires an argument -- '{letter}'");
                    return Err(UsageError::with_help(message));
                }
            }
        } else {
            attached.to_string()
        };
        found.push((opt, Some(value)));
        break;
    }
    Ok(found)
}

impl Api {
    /// Open file description locks, with `set` applied to the range.
    fn with_range(self, set: impl FnOnce(&mut u64, &mut u64)) -> Api {
        let (mut start, mut length) = match self {
            Api::Flock => (0, 0),
            Api::Fcntl { start, length } => (start, length),
        };
        set(&mut start, &mut length);
        Api::Fcntl { start, length }
    }
}

/// `flock: MESSAGE: 'TEXT'`, and for a number out of range `: Numerical
/// result out of range` after it, as util-linux's `err`/`errx` print them.
fn number_error(error: NumberError, message: &str, text: &str) -> UsageError {
    let mut message = format!("{message}: '{text}'");
    if error == NumberError::OutOfRange {
        message.push_str(": Numerical result out of range");
    }
    UsageError::new(message)
}

/// `-w SECS`: as `strtold` reads it (see [`numbers::timeout`]). A value no
/// timer can be set for is not a usage error: flock(1) finds out only when
/// it sets its timer, after opening the file.
fn parse_timeout(text: &str) -> Result<Timeout, UsageError> {
    numbers::timeout(text).map_err(|e| number_error(e, "invalid timeout value", text))
}

/// `-E N`: an `int` within 0 to 255.
fn parse_exit_code(text: &str) -> Result<i32, UsageError> {
    let code = numbers::strtos32(text).map_err(|e| number_error(e, "invalid exit code", text))?;
    if !(0..=255).contains(&code) {
        return Err(UsageError::new("exit code out of range (expected 0 to 255)"));
    }
    Ok(code)
}

/// `--start` and `--length`: sizes.
fn parse_size(text: &str, message: &str) -> Result<u64, UsageError> {
    numbers::size(text).map_err(|e| number_error(e, message, text))
}

/// What follows the options: `FILE COMMAND...`, `FILE -c COMMAND`, or
/// `NUMBER`.
fn target(operands: Vec<OsString>) -> Result<Target, UsageError> {
    let mut operands = operands.into_iter();
    let Some(first) = operands.next() else {
        return Err(UsageError::new("requires file descriptor, file or directory"));
    };
    let Some(program) = operands.next() else {
        return descriptor(&first);
    };
    let path = PathBuf::from(first);
    let args: Vec<OsString> = operands.collect();
    if program != "-c" && program != "--command" {
        return Ok(Target::Path { path, command: ToRun::Argv { program, args } });
    }
    match <[OsString; 1]>::try_from(args) {
        Ok([line]) => Ok(Target::Path { path, command: ToRun::Shell(line) }),
        Err(_) => Err(UsageError::new("-c requires exactly one command argument")),
    }
}

/// `flock NUMBER`: any `int` (one that is not an open descriptor fails
/// when it is locked, as in flock(1)), else a usage error.
fn descriptor(text: &OsStr) -> Result<Target, UsageError> {
    let lossy = text.to_string_lossy();
    let number =
        numbers::strtos32(&lossy).map_err(|e| number_error(e, "bad file descriptor", &lossy))?;
    Ok(Target::Descriptor(number))
}
