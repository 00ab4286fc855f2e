package worker

// ReapLimit exposes reapLimit to the external tests (reaper_test.go).
const ReapLimit = reapLimit
