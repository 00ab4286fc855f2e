-- 0004: the flow key of a run (API.md §9), so a search result and a GET of
-- an archived event show it as the live event did. NULL: no record has told
-- it yet (see doc.go); an empty string: the run has none.

ALTER TABLE events ADD COLUMN flow_key TEXT NULL;
