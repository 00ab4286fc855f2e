package worker_test

import (
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// The stores implement what the worker's components declare.
var (
	_ worker.Store         = (*redisstore.Store)(nil)
	_ worker.Outbox        = (*redisstore.Store)(nil)
	_ worker.ArchiveWriter = (*archive.Store)(nil)
)
