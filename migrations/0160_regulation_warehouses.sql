-- A regulation's deletion in each warehouse of its workspace (JSON array, as destinations): the
-- subjects' rows already loaded there are deleted by the regulation too.
ALTER TABLE regulations ADD COLUMN warehouses TEXT NOT NULL DEFAULT '[]';
