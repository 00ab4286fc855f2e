package redisstore

import (
	"strconv"
	"sync"
)

// claimRecords names the claim records (claim.lua) of a process's claims
// and remembers, per worker and shard, those whose reply came: the next
// claim of that worker and shard deletes them. What is left in Redis is
// the claims whose reply never came, which giveback.lua hands back.
type claimRecords struct {
	mu        sync.Mutex
	seq       uint64
	confirmed map[workerShard][]string
}

type workerShard struct {
	worker string
	shard  int
}

// next returns a new record name, unique in the process (worker ids are
// too: a name can only meet one an earlier process of the same id left,
// which claim.lua steps around), and takes the confirmed names of worker
// and shard for the call to delete.
func (r *claimRecords) next(worker string, shard int) (string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	k := workerShard{worker, shard}
	names := r.confirmed[k]
	if names != nil {
		delete(r.confirmed, k)
	}
	return strconv.FormatUint(r.seq, 36), names
}

// confirm notes names as records of worker and shard for the next claim
// to delete.
func (r *claimRecords) confirm(worker string, shard int, names ...string) {
	if len(names) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.confirmed == nil {
		r.confirmed = map[workerShard][]string{}
	}
	k := workerShard{worker, shard}
	r.confirmed[k] = append(r.confirmed[k], names...)
}
