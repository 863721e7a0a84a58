//! Statements written once, compiled for both backends.
//!
//! A repository module invokes [`statements!`] with its own statement functions;
//! they are expanded twice, into that module's `sqlite` and `postgres`
//! submodules, which the dispatch macros in `connect.rs` pick by backend. Inside,
//! `Db`, `Conn` and `Pool` name the backend's types, and the only differences
//! between dialects are literals, defined here and nowhere else: `now!()` is the
//! database clock, `lock!()` the row lock that serializes an update on
//! PostgreSQL (a SQLite write transaction already holds the database's single
//! write lock), and `notify!()` a notification to other processes, sent on
//! commit (`pg_notify($1, $2)`; on SQLite, a single process, it selects its
//! parameters and does nothing), and `shared_lock!()` / `exclusive_lock!()`
//! a transaction-scoped advisory lock on the `i64` key `$1`, held shared by
//! many writers at once or exclusively by one (on SQLite they select the key:
//! the writer lock already serializes). Parameters are `$1`-style, which sqlx
//! binds by number on both.

macro_rules! statements {
    // One backend's module (first, so the general arm below never swallows it).
    (@backend $module:ident, $db:ty, now = $now:literal, lock = $lock:literal, notify = $notify:literal, shared = $shared:literal, exclusive = $exclusive:literal; $($body:tt)*) => {
        pub(crate) mod $module {
            #[allow(dead_code)]
            type Db = $db;
            #[allow(dead_code)]
            type Conn = <$db as sqlx::Database>::Connection;
            #[allow(dead_code)]
            type Pool = sqlx::Pool<$db>;

            #[allow(unused_macros)]
            macro_rules! now {
                () => {
                    $now
                };
            }

            #[allow(unused_macros)]
            macro_rules! lock {
                () => {
                    $lock
                };
            }

            #[allow(unused_macros)]
            macro_rules! notify {
                () => {
                    $notify
                };
            }

            #[allow(unused_macros)]
            macro_rules! shared_lock {
                () => {
                    $shared
                };
            }

            #[allow(unused_macros)]
            macro_rules! exclusive_lock {
                () => {
                    $exclusive
                };
            }

            $($body)*
        }
    };
    ($($body:tt)*) => {
        $crate::dialect::statements!(
            @backend sqlite,
            sqlx::Sqlite,
            now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            lock = "",
            notify = "SELECT $1, $2",
            shared = "SELECT $1",
            exclusive = "SELECT $1";
            $($body)*
        );
        $crate::dialect::statements!(
            @backend postgres,
            sqlx::Postgres,
            now = "now()",
            lock = "FOR UPDATE",
            notify = "SELECT pg_notify($1, $2)",
            shared = "SELECT pg_advisory_xact_lock_shared($1)",
            exclusive = "SELECT pg_advisory_xact_lock($1)";
            $($body)*
        );
    };
}

pub(crate) use statements;
