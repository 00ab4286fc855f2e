-- 0004: the flow key of a run (API.md §9), so a search result and a GET of
-- an archived event show it as the live event did. NULL: no record has told
-- it yet (see doc.go); an empty string: the run has none.
--
-- A plain ADD COLUMN, which MySQL and MariaDB both take; a migration
-- interrupted after it committed runs again, and Migrate takes the
-- "duplicate column" error of that second run as done (migrate.go).

ALTER TABLE events ADD COLUMN flow_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL;
