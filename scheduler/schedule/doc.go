// Package schedule is recurring events (API.md §8): a schedule says when
// (a cron expression in a time zone, or an interval) and what (the
// template of an event), and Cassata sends one event per occurrence.
//
//	create ──► record (rev 1, next = T1) ──► occurrence event <id>@T1 (PENDING, due T1)
//	                                                   │ claimed at T1
//	                      Advance: CAS next T1 → T2 ◄──┤ (while its request is sent)
//	                      create <id>@T2             ──┘ then its outcome is recorded
//
// The parts:
//
//   - A schedule's record (Store) holds its definition, its revision, the
//     time of its one pending occurrence (the chain's head) and its latest
//     runs. Every write is a compare-and-set on the revision, so API
//     servers and workers never lose each other's changes.
//   - An occurrence is an ordinary event whose id is "<schedule id>@<Unix
//     ms>" (retried, leased, archived, searchable like any). It is due at
//     its occurrence time, so it fires with the same precision as any
//     event and never early.
//   - The worker that claims an occurrence advances the chain (Advance)
//     before recording the outcome: it moves the head to the next
//     occurrence and creates that event. Every step is idempotent (the
//     compare-and-set only moves a head that is still this occurrence; the
//     event id is deterministic and creating an existing one changes
//     nothing), so a worker killed half-way leaves its claim to be repeated
//     and there is exactly one event per occurrence, with no leader and no
//     lock. Work grows with the occurrences that are due, not with the
//     number of schedules: an idle schedule is a record and one pending
//     event.
//   - Occurrences missed while nothing ran: the late occurrence is sent
//     once at recovery, and the chain resumes at the next future
//     occurrence (one catch-up delivery, not one per missed occurrence).
//   - Edits (Put), Pause, Resume and Delete move, cancel or create the head
//     in the same way; Trigger makes an extra occurrence outside the chain.
//
// Time zones and daylight saving (Spec): occurrences follow the wall clock
// of the schedule's time zone. A local time skipped by a spring-forward jump
// fires once, right after the jump; a local time that happens twice fires
// once, the first time; schedules whose hour field is `*` (and `every`
// schedules) follow real time instead. The IANA database is embedded in the
// binary (time/tzdata).
package schedule
