//! The walk over a stored log that finds where its hash chains break.

use std::collections::HashMap;
use std::fmt;

use super::chain::{EventHash, GENESIS, StoredFields, event_hash, to_event_hash};

/// What is wrong with a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TamperingKind {
    /// The event does not match its hash, or does not follow the hash of the event
    /// before it: it (or its hash) was changed after it was written.
    Altered,
    /// A stream version, or an event a checkpoint covers, is not stored.
    Missing,
    /// An event claims a stream version another event holds, or lies past its stream's
    /// head: it was added after the fact.
    Inserted,
    /// A stream's events are stored out of their order.
    Reordered,
    /// The store's own structures are damaged (SQLite's `integrity_check` failed, a row
    /// cannot be read as a row): the events it holds cannot be trusted as read.
    Damaged,
}

impl fmt::Display for TamperingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Altered => "altered",
            Self::Missing => "missing",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::Damaged => "damaged",
        })
    }
}

/// One finding of a verification: what, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {}: {detail}", describe(stream_id, *stream_version, *position))]
pub struct Tampering {
    /// What is wrong.
    pub kind: TamperingKind,
    /// The stream; empty when unknown (a row whose stream cannot be read).
    pub stream_id: String,
    /// The stream version concerned (0 when unknown).
    pub stream_version: u64,
    /// The global position concerned, when there is one (a missing event has none of
    /// its own: this is where its absence was noticed, if anywhere).
    pub position: Option<u64>,
    /// What was found, in words.
    pub detail: String,
}

fn describe(stream_id: &str, stream_version: u64, position: Option<u64>) -> String {
    let at = position.map_or_else(String::new, |position| format!(" (position {position})"));
    if stream_id.is_empty() {
        return match position {
            Some(position) => format!("the event at position {position}"),
            None => "the store".to_owned(),
        };
    }
    format!("stream `{stream_id}` version {stream_version}{at}")
}

/// The result of [`TamperEvident::verify`](super::TamperEvident::verify).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Events read.
    pub events: u64,
    /// Streams read.
    pub streams: u64,
    /// Everything that does not hold, ordered by position (findings without one last).
    pub findings: Vec<Tampering>,
    /// Events whose bodies are archived (see [`crate::archive`]) and were not checked: the
    /// store was verified without their archive. Their hashes and chains were.
    pub archived_unchecked: u64,
}

impl Verification {
    /// Whether the history holds: no findings.
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The first finding by position, if any.
    pub fn first(&self) -> Option<&Tampering> {
        self.findings.first()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.summary(f)?;
        if self.archived_unchecked > 0 {
            write!(
                f,
                " ({} archived bodies not checked: verify with their archives to check them)",
                self.archived_unchecked
            )?;
        }
        Ok(())
    }
}

impl Verification {
    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first() {
            None => write!(
                f,
                "{} events in {} streams verified: intact",
                self.events, self.streams
            ),
            Some(first) => write!(
                f,
                "{} events in {} streams read, {} finding(s); first: {first}",
                self.events,
                self.streams,
                self.findings.len()
            ),
        }
    }
}

/// One stored event as a backend reads it for verification: the hashed fields and the
/// two stored hashes, all as stored (a damaged row still verifies, to a finding).
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// The hashed fields.
    pub fields: StoredFields<'a>,
    /// The stored hash.
    pub hash: &'a [u8],
    /// The stored hash of the previous event in the stream.
    pub predecessor: &'a [u8],
}

/// Where a stream's chain stands during the walk.
struct Chain {
    next_version: u64,
    hash: EventHash,
}

/// The verification engine every backend feeds: events in position order
/// ([`Verifier::event`]), then every stream's head ([`Verifier::finish`]).
#[derive(Default)]
pub struct Verifier {
    chains: HashMap<Vec<u8>, Chain>,
    /// Versions passed over, by stream and version: where the walk noticed them missing.
    gaps: HashMap<(Vec<u8>, u64), u64>,
    last_position: Option<i64>,
    report: Verification,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("events", &self.report.events)
            .field("findings", &self.report.findings.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a finding the backend made itself (a row it could not read, a damaged
    /// file).
    pub fn finding(&mut self, finding: Tampering) {
        self.report.findings.push(finding);
    }

    /// Checks the next event of the log (in position order).
    pub fn event(&mut self, event: &StoredEvent<'_>) {
        self.walk(event, true);
    }

    /// Checks the next event of the log whose body is archived and not at hand: its place
    /// in its stream's chain, not its hash (see [`Verification::archived_unchecked`]).
    pub fn archived_event(&mut self, event: &StoredEvent<'_>) {
        self.report.archived_unchecked += 1;
        self.walk(event, false);
    }

    fn walk(&mut self, event: &StoredEvent<'_>, with_body: bool) {
        self.report.events += 1;
        let fields = &event.fields;
        let stream_id = String::from_utf8_lossy(fields.stream_id).into_owned();
        let version = u64::try_from(fields.stream_version).unwrap_or(0);
        let position = u64::try_from(fields.position).ok();
        let finding = |kind, stream_version, detail: String| Tampering {
            kind,
            stream_id: stream_id.clone(),
            stream_version,
            position,
            detail,
        };
        if let Some(last) = self.last_position
            && fields.position <= last
        {
            self.report.findings.push(finding(
                TamperingKind::Reordered,
                version,
                format!("its position does not follow position {last}"),
            ));
        }
        self.last_position = Some(fields.position);

        let (Some(hash), Some(predecessor)) =
            (to_event_hash(event.hash), to_event_hash(event.predecessor))
        else {
            self.report.findings.push(finding(
                TamperingKind::Altered,
                version,
                format!(
                    "its stored hashes are {} and {} bytes long, not 32",
                    event.hash.len(),
                    event.predecessor.len()
                ),
            ));
            return;
        };
        if with_body && event_hash(&predecessor, fields) != hash {
            self.report.findings.push(finding(
                TamperingKind::Altered,
                version,
                "the stored event does not match its hash".to_owned(),
            ));
        }

        let chain = self
            .chains
            .entry(fields.stream_id.to_vec())
            .or_insert(Chain {
                next_version: 1,
                hash: GENESIS,
            });
        if version == chain.next_version {
            if predecessor != chain.hash {
                let detail = if version == 1 {
                    "the stream's first event names a predecessor".to_owned()
                } else {
                    format!("it does not follow the hash of version {}", version - 1)
                };
                self.report
                    .findings
                    .push(finding(TamperingKind::Altered, version, detail));
            }
        } else if version > chain.next_version {
            // Versions passed over: missing, unless they turn up later (reordered).
            for gap in chain.next_version..version.min(chain.next_version + 1024) {
                self.gaps
                    .insert((fields.stream_id.to_vec(), gap), position.unwrap_or(0));
            }
        } else {
            let late = self.gaps.remove(&(fields.stream_id.to_vec(), version));
            let finding = match late {
                Some(noticed_at) => Tampering {
                    position: Some(noticed_at).filter(|at| *at > 0),
                    ..finding(
                        TamperingKind::Reordered,
                        version,
                        format!(
                            "version {version} is stored at position {} after a later version",
                            fields.position
                        ),
                    )
                },
                None => finding(
                    TamperingKind::Inserted,
                    version,
                    if version == 0 {
                        "it holds stream version 0".to_owned()
                    } else {
                        format!("another event holds version {version} of the stream already")
                    },
                ),
            };
            self.report.findings.push(finding);
            return;
        }
        chain.next_version = version + 1;
        chain.hash = hash;
    }

    /// Checks every stream's head (its id and last version, as a store with a table of
    /// streams records it) against the events walked, and returns the verification.
    pub fn finish_with_heads<'a>(
        mut self,
        heads: impl IntoIterator<Item = (&'a [u8], i64)>,
    ) -> Verification {
        self.report_gaps();
        let mut streams = 0;
        let mut headed = std::collections::HashSet::new();
        for (stream, head) in heads {
            streams += 1;
            headed.insert(stream.to_vec());
            let walked = self
                .chains
                .get(stream)
                .map_or(0, |chain| chain.next_version - 1);
            let stream_id = String::from_utf8_lossy(stream).into_owned();
            let head = u64::try_from(head).unwrap_or(0);
            if walked < head {
                self.report.findings.push(Tampering {
                    kind: TamperingKind::Missing,
                    stream_id,
                    stream_version: walked + 1,
                    position: None,
                    detail: format!(
                        "the stream's head is version {head}, its events end at {walked}"
                    ),
                });
            } else if walked > head {
                self.report.findings.push(Tampering {
                    kind: TamperingKind::Inserted,
                    stream_id,
                    stream_version: head + 1,
                    position: None,
                    detail: format!(
                        "the stream's head is version {head}, its events reach {walked}"
                    ),
                });
            }
        }
        for stream in self
            .chains
            .keys()
            .filter(|stream| !headed.contains(*stream))
        {
            self.report.findings.push(Tampering {
                kind: TamperingKind::Inserted,
                stream_id: String::from_utf8_lossy(stream).into_owned(),
                stream_version: 1,
                position: None,
                detail: "the store holds events of a stream it has no head for".to_owned(),
            });
        }
        self.report.streams = streams;
        self.sorted()
    }

    /// The verification, for a store that records no stream heads apart from its events
    /// (the streams are those the walk met).
    pub fn finish(mut self) -> Verification {
        self.report_gaps();
        self.report.streams = self.chains.len() as u64;
        self.sorted()
    }

    /// Versions passed over that never turned up: missing.
    fn report_gaps(&mut self) {
        for ((stream, version), noticed_at) in self.gaps.drain() {
            self.report.findings.push(Tampering {
                kind: TamperingKind::Missing,
                stream_id: String::from_utf8_lossy(&stream).into_owned(),
                stream_version: version,
                position: Some(noticed_at).filter(|at| *at > 0),
                detail: "no event holds this version of the stream".to_owned(),
            });
        }
    }

    /// The report, findings ordered by position (those without one last).
    fn sorted(mut self) -> Verification {
        self.report
            .findings
            .sort_by_key(|finding| (finding.position.is_none(), finding.position));
        self.report
    }
}

/// The finding of an event whose rows of a store's tag index differ from its tags (the
/// index is in no hash: the SQL stores compare it with the tags when they verify).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn tag_index_differs(position: i64) -> Tampering {
    Tampering {
        kind: TamperingKind::Altered,
        stream_id: String::new(),
        stream_version: 0,
        position: u64::try_from(position).ok(),
        detail: "its rows of the tag index differ from its tags: decisions would miss it, \
                 or find it by a tag it does not carry"
            .to_owned(),
    }
}
