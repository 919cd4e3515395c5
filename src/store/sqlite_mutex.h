/* sqlite_mutex.h: SQLite's mutexes, as glibc adaptive (briefly spinning) mutexes. */
#ifndef REKEY_STORE_SQLITE_MUTEX_H
#define REKEY_STORE_SQLITE_MUTEX_H

/* Makes SQLite use the mutexes of sqlite_mutex.c. Must run before sqlite3_initialize (the
 * backend's one-time setup calls it); later it changes nothing. Returns 0, or -1 when SQLite
 * refused (it then keeps its own mutexes, which are correct, only slower under contention). */
int sqlite_mutex_install(void);

#endif
