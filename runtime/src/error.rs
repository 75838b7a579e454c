//! Errors of encoding and decoding events, and how every factum error is shown.
//!
//! factum's errors follow the Rust convention: an error's `Display` says what failed at
//! its own level, and its cause is its [`source`](StdError::source), never repeated in
//! the message. So each cause is printed once: by a reporter that walks the chain
//! (anyhow's `{:#}`, eyre, or [`Report`] here), or by `Display` alone at the level the
//! caller looks at.

use std::error::Error as StdError;
use std::fmt;

/// Shows an error with its chain of causes, each once, joined by `: `:
/// `format!("{}", Report(&error))`.
///
/// ```
/// use factum::error::Report;
///
/// let io = std::io::Error::other("disk full");
/// let error = factum::store::StoreError::Backend(Box::new(io));
/// assert_eq!(Report(&error).to_string(), "store backend failed: disk full");
/// ```
#[derive(Clone, Copy)]
pub struct Report<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A boxed error from user code (an upcast, a handler), kept as the source of a typed
/// error.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Defines the error a user's handler returns (`ProjectionError`, the process manager's
/// `HandlerError`): any error converts into it with `?`, kept whole as the cause of the
/// runtime error that reports it. It cannot implement `std::error::Error` itself, or its
/// blanket `From` would overlap the reflexive one.
macro_rules! handler_error {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name {
            inner: $crate::error::BoxError,
        }

        impl $name {
            /// A failure described by a message.
            pub fn msg(message: impl ::std::fmt::Display) -> Self {
                Self {
                    inner: message.to_string().into(),
                }
            }

            /// The error and its sources, joined by `: `.
            pub fn message(&self) -> String {
                $crate::error::Report(&*self.inner).to_string()
            }

            /// The underlying error.
            pub fn as_error(&self) -> &(dyn ::std::error::Error + Send + Sync + 'static) {
                &*self.inner
            }

            /// The underlying error, owned: the typed cause a runtime error keeps.
            pub fn into_error(self) -> $crate::error::BoxError {
                self.inner
            }
        }

        impl<E: ::std::error::Error + Send + Sync + 'static> From<E> for $name {
            fn from(error: E) -> Self {
                Self {
                    inner: Box::new(error),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.message())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.message())
            }
        }
    };
}
pub(crate) use handler_error;

/// A stored event could not be decoded into the newest shape of its event.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode event `{event}` version {schema_version}")]
pub struct DecodeError {
    /// The stored event name.
    pub event: String,
    /// The stored schema version.
    pub schema_version: u32,
    /// What went wrong.
    #[source]
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// serde_json's error when the stored payload is not JSON text at all (damaged,
    /// truncated), as opposed to JSON of another shape: a store reports such an event as
    /// a corrupt row.
    pub fn not_json(&self) -> Option<&serde_json::Error> {
        match &self.kind {
            DecodeErrorKind::Payload { source, .. }
                if matches!(
                    source.classify(),
                    serde_json::error::Category::Syntax | serde_json::error::Category::Eof
                ) =>
            {
                Some(source)
            }
            _ => None,
        }
    }
}

/// Why a stored event could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// No event of the set has this name.
    #[error("`{set}` has no event of this name")]
    UnknownEvent {
        /// The event set that was asked.
        set: &'static str,
    },
    /// The stored version is newer than the newest this code knows.
    #[error("the version is newer than this code knows (newest known: {newest})")]
    VersionTooNew {
        /// The newest version the code knows.
        newest: u32,
    },
    /// No upcast path leads from the stored version to the newest.
    #[error("no upcast path leads from this version (oldest readable: {oldest})")]
    NoUpcastPath {
        /// The oldest version the code can read.
        oldest: u32,
    },
    /// The payload does not match the shape of the version it claims.
    #[error("payload does not match version {version} at `{path}`")]
    Payload {
        /// The version whose shape was expected (the stored one, or a JSON upcast's output).
        version: u32,
        /// serde's path to the offending field (`.` for the root).
        path: String,
        /// serde_json's error: what did not match.
        source: serde_json::Error,
    },
    /// An upcast function refused the old data.
    #[error("upcast from version {from} to {to} failed")]
    Upcast {
        /// The version upcast from.
        from: u32,
        /// The version upcast to.
        to: u32,
        /// The upcast's own error.
        source: BoxError,
    },
}

/// An event could not be serialised.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode event `{event}`")]
pub struct EncodeError {
    /// The event name.
    pub event: &'static str,
    /// serde_json's error.
    #[source]
    pub source: serde_json::Error,
}

/// How a spawned task (a projection runner, a process runner, a bus publisher or
/// consumer) ended without reporting an outcome of its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskFailure {
    /// It panicked or was aborted: tokio's report of it.
    #[error(transparent)]
    Join(tokio::task::JoinError),
    /// It stopped, without an error, before what was waited for (named here).
    #[error("it stopped before {0}")]
    StoppedBefore(&'static str),
    /// Its end was already reported, by an earlier call.
    #[error("it had already stopped; its end was reported by an earlier call")]
    AlreadyReported,
}
