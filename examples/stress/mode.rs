//! Exclusive and shared, as written in the logs.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Exclusive,
    Shared,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Exclusive, Mode::Shared];

    pub fn code(self) -> &'static str {
        match self {
            Mode::Exclusive => "X",
            Mode::Shared => "S",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "X" => Some(Mode::Exclusive),
            "S" => Some(Mode::Shared),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
