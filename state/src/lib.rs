//! Durable state, one writer per profile (its worker): the inbox journal with
//! de-duplication, the event log the gateway resumes from, run history, the
//! per-scope session (Codex thread) table and its catalog, scope settings,
//! aliases, access-list changes and a small key-value table.
//!
//! This crate owns the schema, its migrations (see [`SCHEMA_VERSION`]) and
//! every query on it. The worker writes through [`Store`]; tools such as
//! `fcxctl` read through [`Reader`], which never writes and never migrates.
//!
//! SQLite in WAL mode with `synchronous = NORMAL`: a commit survives a kill -9
//! of the worker at any moment (the WAL is in the OS before `COMMIT` returns);
//! an operating-system crash may lose the last few commits. That trade keeps a
//! `Deliver` round trip well under a millisecond, where `FULL` would cost an
//! fsync per message.

#![warn(missing_docs)]

mod events;
mod journal;
mod read;
mod runs;
mod schema;
mod sessions;
mod settings;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;

pub use events::EventLog;
pub use journal::{Accepted, InboxKind, Journal, QueuedMessage};
pub use read::{InboxRecord, Reader, RunListing, SessionListing};
pub use runs::{RunRow, RunTotals, Runs};
pub use schema::SCHEMA_VERSION;
pub use sessions::{CATALOG_PER_PROFILE, CATALOG_PER_SCOPE, CatalogEntry, SessionRow, Sessions};
pub use settings::{AccessOp, ScopeSettings, Settings};

/// Why a state database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or prepared.
    #[error("state database {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The directory that holds the database could not be created.
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The database was written by a newer fcx: its schema is unknown here,
    /// and writing to it (or trusting what is read) could lose data.
    #[error(
        "state database {path} has schema version {found}, newer than the {supported} this \
         fcx understands: upgrade fcx (or move the database aside to start afresh)"
    )]
    NewerSchema {
        /// The database file.
        path: String,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build knows ([`SCHEMA_VERSION`]).
        supported: i64,
    },
    /// A query failed.
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored protobuf record no longer decodes.
    #[error("state database holds an undecodable record: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A thread panicked while holding the connection.
    #[error("state database lock poisoned")]
    Poisoned,
}

impl StoreError {
    /// The disk refused the write (read-only, full, an I/O error, the file
    /// cannot be opened, locked): the same write can work later, unlike a
    /// record that cannot be encoded or a broken query.
    pub fn is_storage_unavailable(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Dir { .. } => true,
            StoreError::Open { source, .. } | StoreError::Sql(source) => matches!(
                source.sqlite_error_code(),
                Some(
                    C::ReadOnly
                        | C::DiskFull
                        | C::SystemIoFailure
                        | C::CannotOpen
                        | C::DatabaseBusy
                        | C::DatabaseLocked
                )
            ),
            _ => false,
        }
    }
}

/// The result of every state operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The read-write handle of one profile's state database. One per worker:
/// the connection sits behind a mutex, so writes never interleave. Its
/// queries are grouped by what they keep, each group a small borrowed view
/// ([`Store::journal`], [`Store::events`], [`Store::runs`],
/// [`Store::sessions`], [`Store::settings`]) over the one connection.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Open (creating it and its directory, mode 0700, if needed) the
    /// database at `path` and bring its schema up to [`SCHEMA_VERSION`].
    /// Fails with [`StoreError::NewerSchema`] when a newer fcx wrote it.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "busy_timeout", 5000)
            .map_err(open_err)?;
        schema::migrate(&mut conn, path)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// The inbox journal.
    pub fn journal(&self) -> Journal<'_> {
        Journal(self)
    }

    /// The event log.
    pub fn events(&self) -> EventLog<'_> {
        EventLog(self)
    }

    /// Run history.
    pub fn runs(&self) -> Runs<'_> {
        Runs(self)
    }

    /// Sessions and their catalog.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(self)
    }

    /// Settings, aliases, access changes and key-value pairs.
    pub fn settings(&self) -> Settings<'_> {
        Settings(self)
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut c)
    }
}

#[cfg(test)]
mod test_support {
    use fcx_proto::v1::Inbound;

    pub(crate) fn inbound(id: &str, scope: &str) -> Inbound {
        Inbound {
            event_id: id.into(),
            scope: scope.into(),
            text: format!("text of {id}"),
            ..Default::default()
        }
    }
}
