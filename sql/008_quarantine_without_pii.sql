-- PII never leaves the customers table: a quarantined row keeps its line number, its
-- reason and its key and feature cells, no longer the raw line with Name and SSN.
-- Rows stored before this migration lose every cell that can identify a person
-- (name, SSN, and Kaggle's row ID) in both our and Kaggle's spelling.

UPDATE ingest_quarantine
SET raw_row = JSON_REMOVE(raw_row, '$.name', '$.ssn', '$.Name', '$.SSN', '$.ID')
WHERE JSON_CONTAINS_PATH(raw_row, 'one', '$.name', '$.ssn', '$.Name', '$.SSN', '$.ID');

ALTER TABLE ingest_quarantine
    CHANGE COLUMN raw_row feature_values JSON NOT NULL
        COMMENT 'the row key and feature cells as read; never name or SSN',
    COMMENT = 'Rows ingest could not clean unambiguously: line, reason and feature cells, no PII.';
