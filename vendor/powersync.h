/*
 * The C entry point of the PowerSync SQLite core extension (libpowersync.so, built from
 * powersync-sqlite-core). The library exports exactly this one symbol; every other SQLite call it
 * makes goes through the sqlite3_api_routines table passed in pApi.
 *
 * powersync-sys generates src/bindings.rs from this file with bindgen (feature buildtime_bindgen).
 * The SQLite types stay opaque here: the Rust side takes them from libsqlite3-sys, so the entry
 * point has exactly the type rusqlite and SQLite's auto-extension list expect.
 */
#ifndef POWERSYNC_H
#define POWERSYNC_H

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_api_routines sqlite3_api_routines;

/*
 * Registers PowerSync's SQL functions, virtual tables and hooks on db.
 * Returns SQLITE_OK (0), or an SQLite error code with *pzErrMsg set to a message allocated with
 * sqlite3_malloc (for example when the host SQLite is older than 3.44.0).
 */
int sqlite3_powersync_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

/** The type of `sqlite3_powersync_init`, as looked up at run time with dlsym. */
typedef int (*sqlite3_powersync_init_fn)(sqlite3 *db, char **pzErrMsg,
                                         const sqlite3_api_routines *pApi);

#endif /* POWERSYNC_H */
