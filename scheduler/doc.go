// Package scheduler is Cassata's domain: the event model and its validation,
// the status machine, the retry policy, the Scheduler (create, get, cancel,
// retry), and the interfaces it needs from storage.
//
// # Where things live
//
//	scheduler/           the domain: Event, Status, Policy, Limits, the
//	                     Scheduler, and the small Store and Archive it reads
//	scheduler/worker     claiming, leases, finishing, reaping, heartbeats,
//	                     archiving
//	scheduler/delivery   the HTTP request, the SSRF guard, signatures
//	scheduler/tenant     applications, API keys, JWTs
//
// Dependencies point one way: worker → delivery → scheduler, tenant →
// scheduler; store/* implement the interfaces each of them declares.
package scheduler
