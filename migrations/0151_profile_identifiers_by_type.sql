-- Identity resolution counts a profile's identifiers of each type (its limits) with COUNT grouped
-- by type: with the type in the index, the count reads the index alone, not every row.
CREATE INDEX profile_identifiers_profile_type ON profile_identifiers (profile_id, type);
DROP INDEX profile_identifiers_profile;
