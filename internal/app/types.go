package app

import "database/sql"

type sqlDBStats = sql.DBStats
