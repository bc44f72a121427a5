//! Durations as written in bundles: `30m`, `24h`, `1d12h`, `90s`.
//!
//! A duration is a whole number of seconds. The text form is one or more `<integer><unit>`
//! parts with units `d` (exactly 24 hours: durations never follow calendars), `h`, `m` and
//! `s`, each unit at most once and in that order. The canonical form, used in the compiled
//! IR and in messages, drops zero parts (`1d0h` is written `1d`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest duration accepted: 3660 days (ten years and then some).
pub const MAX_SECONDS: i64 = 3660 * 86_400;

/// A positive number of seconds.
// INVARIANT: 0 < seconds <= MAX_SECONDS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Duration {
    seconds: i64,
}

impl Duration {
    /// A duration of `seconds`, if it is positive and at most [`MAX_SECONDS`].
    pub fn from_seconds(seconds: i64) -> Option<Self> {
        (seconds > 0 && seconds <= MAX_SECONDS).then_some(Duration { seconds })
    }

    /// The number of seconds.
    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// Parses the text form.
    ///
    /// # Errors
    ///
    /// Returns a message saying what is wrong when `text` is not a duration.
    pub fn parse(text: &str) -> Result<Self, String> {
        const UNITS: [(char, i64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
        let bad = || {
            format!(
                "expected a duration such as \"30m\", \"24h\" or \"1d12h\" (units d, h, m, s in \
                 that order), got {}",
                crate::document::quote_for_message(text)
            )
        };
        let mut rest = text;
        let mut next_unit = 0;
        let mut total: i64 = 0;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            let (number, tail) = rest.split_at(digits);
            let mut chars = tail.chars();
            let unit = chars.next().ok_or_else(bad)?;
            let position = UNITS[next_unit..]
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(bad)?;
            let (_, factor) = UNITS[next_unit + position];
            next_unit += position + 1;
            let n: i64 = number.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(factor)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            rest = chars.as_str();
        }
        if total == 0 {
            return Err("a duration must be longer than zero".to_owned());
        }
        Duration::from_seconds(total).ok_or_else(|| {
            format!(
                "duration too long: at most {}",
                Duration {
                    seconds: MAX_SECONDS
                }
            )
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.seconds;
        for (unit, factor) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
            if s >= factor {
                write!(f, "{}{unit}", s / factor)?;
                s %= factor;
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for Duration {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Duration::parse(&value)
    }
}

impl From<Duration> for String {
    fn from(value: Duration) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_in_order() {
        assert_eq!(Duration::parse("90s").unwrap().seconds(), 90);
        assert_eq!(Duration::parse("1d12h").unwrap().seconds(), 129_600);
        assert_eq!(Duration::parse("2h30m").unwrap().seconds(), 9_000);
        assert_eq!(Duration::parse("72h").unwrap().to_string(), "3d");
        assert_eq!(Duration::parse("1d0h").unwrap().to_string(), "1d");
        assert_eq!(Duration::parse("3661s").unwrap().to_string(), "1h1m1s");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "h",
            "1",
            "1x",
            "1h1d",
            "1h1h",
            "-1h",
            "1.5h",
            "1 h",
            "9999999999s",
        ] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Duration::parse("0s").unwrap_err(),
            "a duration must be longer than zero"
        );
        assert!(
            Duration::parse("3661d")
                .unwrap_err()
                .starts_with("duration too long")
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [1, 59, 60, 3_599, 86_400, 86_401, MAX_SECONDS] {
            let d = Duration::from_seconds(s).unwrap();
            assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
    }
}
