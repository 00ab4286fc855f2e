-- The dashboard's deliveries-per-minute chart reads recent attempts by time.
CREATE INDEX IF NOT EXISTS attempts_at ON attempts (at_ms);
