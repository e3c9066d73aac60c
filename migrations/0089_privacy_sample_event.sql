-- The event a field's sample value came from, so that deleting a person's events (a regulation)
-- also forgets the sample values their events gave.
ALTER TABLE privacy_fields ADD COLUMN sample_event_id TEXT;
