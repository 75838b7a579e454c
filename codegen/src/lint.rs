//! The naming and versioning conventions checked by `factum schema lint`: events named in
//! the past tense, commands starting with an imperative verb, every event versioned from 1.
//!
//! The rules are heuristics over words (a CamelCase name split into words, compared without
//! regard to case against built-in word lists), so they report warnings, never errors, and
//! each warning can be allowed for one name (`--allow RULE:NAME`).
//!
//! ```
//! use factum_codegen::lint::{Allowances, LintRule, lint};
//! use serde_json::json;
//!
//! let registry = json!({"entries": [
//!     {"kind": "event", "name": "OrderPlace", "version": 1, "schema": {}},
//!     {"kind": "command", "name": "PlaceOrder", "version": 1, "schema": {}},
//! ]});
//! let warnings = lint(&registry, &Allowances::default()).unwrap();
//! assert_eq!(warnings.len(), 1);
//! assert_eq!(
//!     warnings[0].to_string(),
//!     "warning[event-past-tense]: event `OrderPlace` should be named in the past tense (e.g. `OrderPlaced`)"
//! );
//!
//! let allow = Allowances::from_specs(["event-past-tense:OrderPlace"]).unwrap();
//! assert!(lint(&registry, &allow).unwrap().is_empty());
//! # assert_eq!(warnings[0].rule, LintRule::EventPastTense);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::files::{MalformedRegistry, entries};

/// A lint rule, identified on the command line by its id (e.g. `event-past-tense`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LintRule {
    /// `event-past-tense`: the last word of an event name is a past-tense verb
    /// (`OrderPlaced`, `PaymentSent`).
    EventPastTense,
    /// `command-imperative`: the first word of a command name is a verb in the base form
    /// (`PlaceOrder`, not `PlacedOrder`, `PlacingOrder` or `OrderPlace`).
    CommandImperative,
    /// `versioned-from-1`: an event's versions start at 1, or its lowest version reads
    /// retired versions from 1 through a JSON upcast path.
    VersionedFrom1,
}

impl LintRule {
    /// Every rule, in the order they are checked.
    pub const ALL: [LintRule; 3] = [
        LintRule::EventPastTense,
        LintRule::CommandImperative,
        LintRule::VersionedFrom1,
    ];

    /// The rule's id, as written in warnings and in `--allow RULE:NAME`.
    pub fn id(self) -> &'static str {
        match self {
            LintRule::EventPastTense => "event-past-tense",
            LintRule::CommandImperative => "command-imperative",
            LintRule::VersionedFrom1 => "versioned-from-1",
        }
    }
}

impl fmt::Display for LintRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A rule id that names no rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown lint rule `{0}`: expected one of `event-past-tense`, `command-imperative`, `versioned-from-1`"
)]
pub struct UnknownLintRule(pub String);

impl FromStr for LintRule {
    type Err = UnknownLintRule;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        LintRule::ALL
            .into_iter()
            .find(|rule| rule.id() == id.trim())
            .ok_or_else(|| UnknownLintRule(id.to_owned()))
    }
}

/// An `--allow` value that is not `RULE:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAllowance {
    /// No `:` between rule and name, or an empty name.
    #[error("invalid allowance `{0}`: expected RULE:NAME, e.g. `event-past-tense:OrderStatus`")]
    Shape(String),
    /// The rule is unknown.
    #[error("invalid allowance")]
    Rule(#[from] UnknownLintRule),
}

/// The warnings allowed as exceptions: a rule for one name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowances {
    /// The allowed (rule, name) pairs.
    pub by_rule_and_name: BTreeSet<(LintRule, String)>,
}

impl Allowances {
    /// Allows `rule` for the event or command `name`.
    pub fn allow(&mut self, rule: LintRule, name: impl Into<String>) -> &mut Self {
        self.by_rule_and_name.insert((rule, name.into()));
        self
    }

    /// Whether `rule` is allowed for `name`.
    pub fn is_allowed(&self, rule: LintRule, name: &str) -> bool {
        self.by_rule_and_name.contains(&(rule, name.to_owned()))
    }

    /// Parses one `RULE:NAME` allowance, e.g. `event-past-tense:OrderStatus` (usable as a
    /// clap `value_parser`).
    pub fn parse_one(spec: &str) -> Result<(LintRule, String), InvalidAllowance> {
        let (rule, name) = spec
            .split_once(':')
            .ok_or_else(|| InvalidAllowance::Shape(spec.to_owned()))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(InvalidAllowance::Shape(spec.to_owned()));
        }
        Ok((rule.parse()?, name.to_owned()))
    }

    /// Parses `RULE:NAME` allowances (the `--allow` values): all, or the first invalid one.
    pub fn from_specs<S: AsRef<str>>(
        specs: impl IntoIterator<Item = S>,
    ) -> Result<Self, InvalidAllowance> {
        specs
            .into_iter()
            .map(|spec| Self::parse_one(spec.as_ref()))
            .collect()
    }
}

impl FromIterator<(LintRule, String)> for Allowances {
    fn from_iter<I: IntoIterator<Item = (LintRule, String)>>(iter: I) -> Self {
        Allowances {
            by_rule_and_name: iter.into_iter().collect(),
        }
    }
}

/// A convention a registry entry does not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    /// The rule.
    pub rule: LintRule,
    /// `"event"` or `"command"`.
    pub kind: String,
    /// The event or command name.
    pub name: String,
    /// The version concerned, for rules about versions (`versioned-from-1`: the lowest).
    pub version: Option<u64>,
    /// What is wrong, with a suggestion where one is known.
    pub message: String,
}

impl fmt::Display for LintWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning[{}]: {}", self.rule, self.message)
    }
}

/// Lints a registry document (`{"entries": [..]}`), leaving out allowed warnings.
///
/// Warnings come in registry order of names (first appearance), each name's rules in
/// [`LintRule::ALL`] order.
pub fn lint(
    registry_json: &Value,
    allow: &Allowances,
) -> Result<Vec<LintWarning>, MalformedRegistry> {
    let entries = entries(registry_json)?;
    // (kind, name) in order of first appearance, and each event's versions.
    let mut names: Vec<(&str, &str)> = Vec::new();
    let mut versions: BTreeMap<&str, BTreeMap<u64, usize>> = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        if !names.contains(&(entry.kind, entry.name)) {
            names.push((entry.kind, entry.name));
        }
        if entry.kind == "event" {
            versions
                .entry(entry.name)
                .or_default()
                .insert(entry.version, index);
        }
    }

    let mut warnings = Vec::new();
    for (kind, name) in names {
        let mut found = Vec::new();
        if kind == "event" {
            if let Some(message) = event_past_tense(name) {
                found.push((LintRule::EventPastTense, None, message));
            }
            let (&lowest, &index) = versions[name]
                .first_key_value()
                .expect("an event name has a version");
            if let Some(message) = versioned_from_1(name, lowest, entries[index].value, index)? {
                found.push((LintRule::VersionedFrom1, Some(lowest), message));
            }
        } else if let Some(message) = command_imperative(name) {
            found.push((LintRule::CommandImperative, None, message));
        }
        warnings.extend(
            found
                .into_iter()
                .filter(|(rule, _, _)| !allow.is_allowed(*rule, name))
                .map(|(rule, version, message)| LintWarning {
                    rule,
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    version,
                    message,
                }),
        );
    }
    Ok(warnings)
}

/// `event-past-tense` for one name: the message of its warning, if any.
pub fn event_past_tense(name: &str) -> Option<String> {
    let words = split_words(name);
    let last = *words.last()?;
    if is_past_tense(last) {
        return None;
    }
    let suggestion = if let Some(past) = past_of(last) {
        // `OrderPlace` -> `OrderPlaced`
        Some(replace_word(&words, words.len() - 1, &past))
    } else if words.len() > 1
        && let Some(past) = past_of(words[0])
    {
        // Command-shaped `PlaceOrder` -> `OrderPlaced`
        let mut rest: String = words[1..].concat();
        rest.push_str(&past);
        Some(rest)
    } else {
        None
    };
    Some(match suggestion {
        Some(suggestion) => {
            format!("event `{name}` should be named in the past tense (e.g. `{suggestion}`)")
        }
        None => format!(
            "event `{name}` should be named in the past tense: its last word `{last}` is not a past-tense verb"
        ),
    })
}

/// `command-imperative` for one name: the message of its warning, if any.
pub fn command_imperative(name: &str) -> Option<String> {
    let words = split_words(name);
    let first = *words.first()?;
    if is_imperative_verb(first) {
        return None;
    }
    let with_first = |base: Option<String>| {
        base.map(|base| format!(" (e.g. `{}`)", replace_word(&words, 0, &base)))
            .unwrap_or_default()
    };
    if is_past_only(first) {
        let hint = with_first(base_of_past(first));
        return Some(format!(
            "command `{name}` should start with an imperative verb, not the past tense `{first}`{hint}"
        ));
    }
    if let Some(stem) = gerund_stem(first) {
        let hint = with_first(base_of_gerund(stem));
        return Some(format!(
            "command `{name}` should start with an imperative verb, not the gerund `{first}`{hint}"
        ));
    }
    // Noun first: suggest moving a known verb to the front (`OrderCancel` -> `CancelOrder`).
    let hint = words
        .iter()
        .position(|word| is_imperative_verb(word))
        .map(|at| {
            let mut moved = words[at].to_owned();
            for (index, word) in words.iter().enumerate() {
                if index != at {
                    moved.push_str(word);
                }
            }
            format!(" (e.g. `{moved}`)")
        })
        .unwrap_or_default();
    Some(format!(
        "command `{name}` should start with an imperative verb: is `{first}` a verb?{hint}"
    ))
}

/// `versioned-from-1` for one event: the message of its warning, if any. `entry` is the
/// entry of the lowest version, at `index` in the registry.
fn versioned_from_1(
    name: &str,
    lowest: u64,
    entry: &Value,
    index: usize,
) -> Result<Option<String>, MalformedRegistry> {
    if lowest == 1 {
        return Ok(None);
    }
    let malformed = |problem: &str| MalformedRegistry {
        path: format!("/entries/{index}/upcast"),
        problem: problem.to_owned(),
    };
    let reason = match entry.get("upcast") {
        None | Some(Value::Null) => "has no upcast path".to_owned(),
        Some(upcast) => {
            let kind = upcast
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("expected an object with a string `kind`"))?;
            match kind {
                "json" => {
                    let oldest = upcast
                        .get("oldest")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| malformed("expected `oldest`, a version"))?;
                    if oldest == 1 {
                        return Ok(None);
                    }
                    format!("reads retired versions only from v{oldest}")
                }
                "typed" => {
                    let from = upcast.get("from").and_then(Value::as_u64);
                    match from {
                        Some(from) => format!("upcasts from v{from}, which is not registered"),
                        None => "has a typed upcast path from no registered version".to_owned(),
                    }
                }
                _ => "has no upcast path".to_owned(),
            }
        }
    };
    Ok(Some(format!(
        "event `{name}` starts at v{lowest}: every event is versioned from 1, and v{lowest} {reason} (register v1, or `upcast_json` from 1)"
    )))
}

/// Irregular past tenses and past participles accepted as the last word of an event
/// (sorted; compared without regard to case).
const IRREGULAR_PAST: &[&str] = &[
    "Beaten",
    "Become",
    "Begun",
    "Bitten",
    "Blown",
    "Bought",
    "Broadcast",
    "Brought",
    "Built",
    "Caught",
    "Chosen",
    "Come",
    "Cut",
    "Done",
    "Drawn",
    "Driven",
    "Eaten",
    "Fallen",
    "Flown",
    "Forecast",
    "Forgiven",
    "Forgotten",
    "Fought",
    "Found",
    "Frozen",
    "Given",
    "Gone",
    "Gotten",
    "Grown",
    "Held",
    "Hidden",
    "Hit",
    "Kept",
    "Known",
    "Left",
    "Let",
    "Lost",
    "Made",
    "Met",
    "Overridden",
    "Paid",
    "Proven",
    "Put",
    "Quit",
    "Read",
    "Reset",
    "Ridden",
    "Risen",
    "Run",
    "Seen",
    "Sent",
    "Set",
    "Shaken",
    "Shown",
    "Shut",
    "Sold",
    "Sought",
    "Spent",
    "Split",
    "Spoken",
    "Stolen",
    "Striven",
    "Sworn",
    "Taken",
    "Taught",
    "Thought",
    "Thrown",
    "Told",
    "Torn",
    "Undone",
    "Upset",
    "Withdrawn",
    "Woken",
    "Won",
    "Worn",
    "Written",
];

/// Base forms whose past is irregular (or the base form itself), for suggestions
/// (sorted by base form). Every past form here is in [`IRREGULAR_PAST`].
const IRREGULAR_BASE_TO_PAST: &[(&str, &str)] = &[
    ("Beat", "Beaten"),
    ("Become", "Become"),
    ("Begin", "Begun"),
    ("Bite", "Bitten"),
    ("Blow", "Blown"),
    ("Bring", "Brought"),
    ("Broadcast", "Broadcast"),
    ("Build", "Built"),
    ("Buy", "Bought"),
    ("Catch", "Caught"),
    ("Choose", "Chosen"),
    ("Come", "Come"),
    ("Cut", "Cut"),
    ("Do", "Done"),
    ("Draw", "Drawn"),
    ("Drive", "Driven"),
    ("Eat", "Eaten"),
    ("Fall", "Fallen"),
    ("Fight", "Fought"),
    ("Find", "Found"),
    ("Fly", "Flown"),
    ("Forecast", "Forecast"),
    ("Forget", "Forgotten"),
    ("Forgive", "Forgiven"),
    ("Freeze", "Frozen"),
    ("Get", "Gotten"),
    ("Give", "Given"),
    ("Go", "Gone"),
    ("Grow", "Grown"),
    ("Hide", "Hidden"),
    ("Hit", "Hit"),
    ("Hold", "Held"),
    ("Keep", "Kept"),
    ("Know", "Known"),
    ("Leave", "Left"),
    ("Let", "Let"),
    ("Lose", "Lost"),
    ("Make", "Made"),
    ("Meet", "Met"),
    ("Override", "Overridden"),
    ("Pay", "Paid"),
    ("Prove", "Proven"),
    ("Put", "Put"),
    ("Quit", "Quit"),
    ("Read", "Read"),
    ("Reset", "Reset"),
    ("Ride", "Ridden"),
    ("Rise", "Risen"),
    ("Run", "Run"),
    ("See", "Seen"),
    ("Seek", "Sought"),
    ("Sell", "Sold"),
    ("Send", "Sent"),
    ("Set", "Set"),
    ("Shake", "Shaken"),
    ("Show", "Shown"),
    ("Shut", "Shut"),
    ("Speak", "Spoken"),
    ("Spend", "Spent"),
    ("Split", "Split"),
    ("Steal", "Stolen"),
    ("Strive", "Striven"),
    ("Swear", "Sworn"),
    ("Take", "Taken"),
    ("Teach", "Taught"),
    ("Tear", "Torn"),
    ("Tell", "Told"),
    ("Think", "Thought"),
    ("Throw", "Thrown"),
    ("Undo", "Undone"),
    ("Upset", "Upset"),
    ("Wake", "Woken"),
    ("Wear", "Worn"),
    ("Win", "Won"),
    ("Withdraw", "Withdrawn"),
    ("Write", "Written"),
];

/// Regular verbs that double their last consonant before `-ed` (`Ship` -> `Shipped`;
/// `Cancel` -> `Cancelled`, the spelling of the example domain); sorted.
const DOUBLING: &[&str] = &[
    "Admit", "Cancel", "Log", "Ship", "Stop", "Submit", "Transfer",
];

/// Common imperative verbs accepted as the first word of a command (sorted; compared
/// without regard to case).
const IMPERATIVE_VERBS: &[&str] = &[
    "Accept",
    "Activate",
    "Add",
    "Adjust",
    "Administer",
    "Admit",
    "Apply",
    "Approve",
    "Archive",
    "Assign",
    "Attach",
    "Block",
    "Book",
    "Calculate",
    "Cancel",
    "Change",
    "Charge",
    "Close",
    "Collect",
    "Complete",
    "Confirm",
    "Correct",
    "Create",
    "Deactivate",
    "Decline",
    "Delete",
    "Deliver",
    "Deposit",
    "Detach",
    "Disable",
    "Discharge",
    "Dispatch",
    "Enable",
    "Expire",
    "Export",
    "Extend",
    "Grant",
    "Import",
    "Invite",
    "Issue",
    "Link",
    "Lock",
    "Log",
    "Mark",
    "Merge",
    "Move",
    "Note",
    "Open",
    "Pack",
    "Pay",
    "Pick",
    "Place",
    "Prescribe",
    "Publish",
    "Receive",
    "Record",
    "Refund",
    "Register",
    "Reject",
    "Release",
    "Remove",
    "Rename",
    "Renew",
    "Reopen",
    "Replace",
    "Request",
    "Reserve",
    "Reset",
    "Restore",
    "Resume",
    "Retry",
    "Return",
    "Revoke",
    "Schedule",
    "Send",
    "Set",
    "Ship",
    "Sign",
    "Split",
    "Start",
    "Stop",
    "Submit",
    "Suspend",
    "Sync",
    "Transfer",
    "Triage",
    "Unblock",
    "Unlink",
    "Unlock",
    "Unpublish",
    "Update",
    "Upload",
    "Verify",
    "Void",
    "Withdraw",
];

/// A name split into words: at `_`, `-` and other separators, before an upper-case letter
/// that follows a lower-case letter or digit, and before the last capital of an acronym
/// followed by a lower-case letter (`HTTPRequestSent` -> `HTTP`, `Request`, `Sent`).
pub fn split_words(name: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let chars: Vec<(usize, char)> = name.char_indices().collect();
    let mut start: Option<usize> = None;
    for (at, &(offset, ch)) in chars.iter().enumerate() {
        if !ch.is_alphanumeric() {
            if let Some(begin) = start.take() {
                words.push(&name[begin..offset]);
            }
            continue;
        }
        let Some(begin) = start else {
            start = Some(offset);
            continue;
        };
        let previous = chars[at - 1].1;
        let next_is_lower = chars
            .get(at + 1)
            .is_some_and(|(_, next)| next.is_lowercase());
        let boundary = ch.is_uppercase()
            && (previous.is_lowercase()
                || previous.is_numeric()
                || (previous.is_uppercase() && next_is_lower));
        if boundary {
            words.push(&name[begin..offset]);
            start = Some(offset);
        }
    }
    if let Some(begin) = start {
        words.push(&name[begin..]);
    }
    words
}

fn contains(list: &[&str], word: &str) -> bool {
    list.binary_search_by(|probe| cmp_ignore_case(probe, word))
        .is_ok()
}

fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

fn ends_with_ignore_case(word: &str, suffix: &str) -> bool {
    word.len() > suffix.len()
        && word
            .get(word.len() - suffix.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
}

/// Whether `word` is a past-tense form: ends in `-ed`, or is an irregular form.
pub fn is_past_tense(word: &str) -> bool {
    ends_with_ignore_case(word, "ed") || contains(IRREGULAR_PAST, word)
}

/// Whether `word` is one of the built-in imperative verbs.
pub fn is_imperative_verb(word: &str) -> bool {
    contains(IMPERATIVE_VERBS, word)
}

/// A past form that is not also a base form (`Placed`, `Sent`; not `Set` or `Read`).
fn is_past_only(word: &str) -> bool {
    is_past_tense(word)
        && !ends_with_ignore_case(word, "eed")
        && !IRREGULAR_BASE_TO_PAST
            .iter()
            .any(|(base, _)| base.eq_ignore_ascii_case(word))
}

fn irregular_past(base: &str) -> Option<&'static str> {
    IRREGULAR_BASE_TO_PAST
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(base))
        .map(|(_, past)| *past)
}

/// The past form of a known base form (`Place` -> `Placed`, `Send` -> `Sent`), in the
/// capitalisation of the lists; `None` for a word that is not a known verb.
pub fn past_of(base: &str) -> Option<String> {
    if let Some(past) = irregular_past(base) {
        return Some(past.to_owned());
    }
    let verb = IMPERATIVE_VERBS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(base))?;
    Some(regular_past(verb))
}

fn regular_past(verb: &str) -> String {
    let mut chars = verb.chars().rev();
    let last = chars.next().unwrap_or_default();
    let before = chars.next().unwrap_or_default();
    if contains(DOUBLING, verb) {
        format!("{verb}{last}ed")
    } else if last == 'e' {
        format!("{verb}d")
    } else if last == 'y' && !"aeiou".contains(before) {
        format!("{}ied", &verb[..verb.len() - 1])
    } else {
        format!("{verb}ed")
    }
}

/// The base form of a known past form (`Placed` -> `Place`, `Sent` -> `Send`).
fn base_of_past(past: &str) -> Option<String> {
    IRREGULAR_BASE_TO_PAST
        .iter()
        .find(|(_, known)| known.eq_ignore_ascii_case(past))
        .map(|(base, _)| *base)
        .or_else(|| {
            IMPERATIVE_VERBS
                .iter()
                .copied()
                .find(|verb| regular_past(verb).eq_ignore_ascii_case(past))
        })
        .map(str::to_owned)
}

/// The stem of a gerund (`Placing` -> `Plac`); `None` for words such as `Bring` whose
/// `-ing` is no suffix (no vowel before it).
fn gerund_stem(word: &str) -> Option<&str> {
    if !ends_with_ignore_case(word, "ing") {
        return None;
    }
    let stem = &word[..word.len() - 3];
    stem.chars()
        .any(|ch| "aeiouyAEIOUY".contains(ch))
        .then_some(stem)
}

/// The known base form of a gerund's stem: `Plac` -> `Place`, `Shipp` -> `Ship`.
fn base_of_gerund(stem: &str) -> Option<String> {
    let known = |candidate: &str| {
        IMPERATIVE_VERBS
            .iter()
            .chain(IRREGULAR_BASE_TO_PAST.iter().map(|(base, _)| base))
            .find(|verb| verb.eq_ignore_ascii_case(candidate))
            .map(|verb| (*verb).to_owned())
    };
    let undoubled = stem
        .char_indices()
        .last()
        .filter(|&(at, last)| at > 0 && stem[..at].ends_with(last))
        .map(|(at, _)| &stem[..at]);
    known(stem)
        .or_else(|| known(&format!("{stem}e")))
        .or_else(|| undoubled.and_then(known))
}

fn replace_word(words: &[&str], index: usize, with: &str) -> String {
    words
        .iter()
        .enumerate()
        .map(|(at, word)| if at == index { with } else { word })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_ignoring_case(list: &[&str]) -> bool {
        list.windows(2)
            .all(|pair| cmp_ignore_case(pair[0], pair[1]).is_lt())
    }

    #[test]
    fn word_lists_are_sorted_and_unique() {
        assert!(sorted_ignoring_case(IRREGULAR_PAST));
        assert!(sorted_ignoring_case(IMPERATIVE_VERBS));
        assert!(sorted_ignoring_case(DOUBLING));
        let bases: Vec<&str> = IRREGULAR_BASE_TO_PAST
            .iter()
            .map(|(base, _)| *base)
            .collect();
        assert!(sorted_ignoring_case(&bases), "{bases:?}");
    }

    #[test]
    fn every_suggested_past_is_accepted() {
        for (base, past) in IRREGULAR_BASE_TO_PAST {
            assert!(contains(IRREGULAR_PAST, past), "{base} -> {past}");
        }
        for verb in IMPERATIVE_VERBS {
            let past = past_of(verb).unwrap();
            assert!(is_past_tense(&past), "{verb} -> {past}");
            assert_eq!(base_of_past(&past).as_deref(), Some(*verb), "{past}");
        }
        for verb in DOUBLING {
            assert!(is_imperative_verb(verb), "{verb}");
        }
    }

    #[test]
    fn regular_pasts() {
        let cases = [
            ("Place", "Placed"),
            ("Ship", "Shipped"),
            ("Cancel", "Cancelled"),
            ("Verify", "Verified"),
            ("Retry", "Retried"),
            ("Add", "Added"),
            ("Send", "Sent"),
            ("Pay", "Paid"),
            ("Withdraw", "Withdrawn"),
        ];
        for (base, past) in cases {
            assert_eq!(past_of(base).as_deref(), Some(past));
        }
    }

    #[test]
    fn gerunds() {
        assert_eq!(
            base_of_gerund(gerund_stem("Placing").unwrap()).as_deref(),
            Some("Place")
        );
        assert_eq!(
            base_of_gerund(gerund_stem("Shipping").unwrap()).as_deref(),
            Some("Ship")
        );
        assert_eq!(
            base_of_gerund(gerund_stem("Sending").unwrap()).as_deref(),
            Some("Send")
        );
        assert_eq!(gerund_stem("Bring"), None);
        assert_eq!(gerund_stem("String"), None);
    }
}
