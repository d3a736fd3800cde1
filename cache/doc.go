// Package cache is outpostd's durable store: the only package that imports
// Badger in the daemon (docs/ARCHITECTURE.md, checked by deptest), and no
// Badger type appears in its API.
//
// It keeps, through reboots and sixty days offline:
//
//   - the signed config and grant bundle as raw bytes with their version and
//     fetch time (PutDocument, GetDocument); verifying signatures is the sync
//     package's job, the store only refuses a lower version (ErrStaleVersion);
//   - small state: cursors, the offline clock (the last time the
//     cloud confirmed, and the uptime since), the
//     control certificate (PutState, SetCursor, PutOfflineClock, ...);
//   - append-only streams (logs by level class, captures, audit events, gap
//     records, proposals): Append assigns the next per-stream sequence number,
//     Read reads from a cursor, Ack deletes what the cloud confirmed. The
//     records of a stream that one group commit writes are stored as one
//     Badger entry, a run (see encoding.go), so the store's cost is per
//     batch, not per record; a run acked in part stays until its last
//     record is acked, and Read never returns its acknowledged records;
//   - captures still on the part can be tagged or deleted on a person's
//     request (EditCaptures, DeleteCaptures; see edit.go): an edit rewrites
//     the record in place, keeping its sequence, and a delete writes a gap
//     record in the same transaction, so the cloud still counts past it;
//   - blobs stored in chunks with a resumable upload offset.
//
// # Durability
//
// Every write that returns nil is on disk. Appends are group-committed:
// concurrent Append calls are queued to one committer goroutine that takes
// everything pending and pays one sync for the whole group. Queue hands an
// append to the committer and returns at once, so one producer can have
// many records in a group (capture's collectors keep up to 64 queued);
// its Pending's Wait returning nil is what Append returning nil is. A group of
// small records (an entry of up to 512 KiB) becomes durable in the intake
// (intake.go): one pwrite to a 4 MiB file made of written zeros and one
// fdatasync, which on ext4 costs a device cache flush but no journal
// commit, where Badger's synced commit costs two msyncs of files it grows
// (the value log and the memtable's write-ahead log). What the intake
// holds is moved into Badger, in one synced commit for many groups, when
// the intake is full and before anything else reads or changes the
// streams, so Read, Ack, Stats, edits and eviction see exactly what they
// did before (writers of gap records must settle first, lockSettled;
// readers and acks go on with what Badger holds if it refuses the intake's
// appends, lockTrySettled); Open moves what a crash left there. A
// larger group, and one that needs an eviction first, takes Badger's
// synced commit directly. Badger runs with SyncWrites, so every commit
// returns only after its files are msync'ed (and Badger syncs a value-log
// file when it rotates away from it). (SyncWrites=false plus DB.Sync after
// each group would be cheaper but has two holes under power loss: DB.Sync
// only syncs the current memtable WAL, so a group written across a memtable
// rotation would leave its first part unsynced; and value-log GC moves live
// values with unsynced writes and then deletes the file they came from.)
// Reads see a record only once it is in Badger, so nothing reaches the
// cloud before it is durable.
//
// What survives what:
//
//   - A process crash (kill -9, panic, OOM kill) loses nothing that was
//     acknowledged. Appends that had not returned (or whose Wait had not)
//     may or may not be present; if present they are complete and sequence
//     numbers stay contiguous
//     (Badger replays its logs in order and truncates a torn tail; the
//     intake is read up to its first torn entry or one of an older
//     generation, and only records after each stream's last one in Badger
//     are moved, so none is there twice: TestIntakeRecovery,
//     TestCrashKeepsBothPaths).
//     TestCrashKill checks this with 50 SIGKILLed processes. It found a
//     Badger v4.9.6 bug: a log file created but not yet initialised when the
//     process died makes Open fail; Open first removes such empty files
//     (they hold no data), holding the directory's lock while it does.
//   - A power cut loses nothing that was acknowledged, provided the storage
//     honours flush requests (an SD card whose controller acknowledges
//     flushes it has not done is beyond what software can promise). Writes
//     in flight are lost whole or cut at a record boundary by Badger's
//     recovery, with the metas in the same transactions as their records;
//     an intake entry has one checksum over the whole group, so a torn one
//     is dropped whole. An entry whose checksum holds but which does not
//     decode ends the intake's recovery: the store opens with the appends
//     before it and a gap record says appends were lost
//     (TestDamagedIntakeOpens).
//   - Ack, eviction, edit, delete, document, state and blob writes are
//     synced the same way. An Ack lost to a crash only means records are
//     sent again, which the cloud treats as a no-op, since it
//     stores records by (part, store, stream, sequence).
//     TestCrashDuringEdits kills a process that tags, deletes and acks.
//   - A store Badger cannot open even after its own repair is renamed to
//     DIR.corrupt-<time> (never deleted), a fresh store starts, and a gap
//     record plus an error-level log say so. A run that opens but cannot
//     be read back (damaged on disk) is dropped whole when Read meets it,
//     with a gap record over the sequences it may hold, so that the stream
//     does not stall.
//
// # Memory
//
// Badger is configured for a 1-4 GB Raspberry Pi (see badgerOptions and
// docs/PERFORMANCE.md): 8 MB memtables (2), 512 B value threshold, 8 MB block
// and index caches, 64 MB value-log files, 2 compactors. Badger memory-maps
// its files, so every page written would stay in the resident set; the
// store periodically unmaps those pages from the process (they stay in the
// kernel's page cache), which keeps VmRSS near 40 MB while holding 1 GB.
//
// # Byte budget
//
// Budget.MaxBytes bounds the live bytes the store accounts for (records and
// their keys, blob chunks). Disk use may exceed it by space not yet reclaimed
// by value-log GC (at most a few value-log files). Budget.MinFreeBytes is the
// free disk the store leaves alone: below it appends fail with ErrDiskFull
// (errors.Is(err, syscall.ENOSPC) also holds) and reads keep working.
//
// Over budget the store evicts, in this order:
// debug logs (oldest first), then info logs, then captures (lowest priority
// first, oldest first within a priority). An incoming record only evicts
// classes that rank at or below its own (a debug log never pushes out a
// capture); audit events, gap records, warn logs and proposals may evict any
// evictable class and are admitted even over budget, except that audit
// events evict only while the audit stream holds at most AuditSharePercent
// of the budget: past that share an audit event that does not fit is
// refused with ErrOverBudget (control counts refusals it could not record
// and writes them, aggregated, once there is room). Each eviction writes a
// gap record (stream, sequence range, count, bytes, reason) to StreamGaps in
// the same synced transaction as the deletion; consecutive evictions of one
// stream and priority extend the same gap record until an upload reads it
// (see commitWithGap), so a long outage leaves a few, not thousands.
// Config, grants, state, cursors, audit events, warn logs, gap records,
// proposals and blobs are never evicted; an evictable append that cannot
// make room fails with ErrOverBudget.
//
// # Space
//
// Deleted data is reclaimed by value-log GC on a schedule (Options.GCInterval)
// and after large acks; value-log files are kept small (64 MB) because GC
// never rewrites the active file. A reclaim after large acks rewrites only
// files at least 90 % garbage (acks go in sequence order, so files die
// whole, oldest first); the scheduled one, and Reclaim, those at least half
// garbage, which also covers garbage that edits, deletes and eviction by
// priority scatter.
package cache
