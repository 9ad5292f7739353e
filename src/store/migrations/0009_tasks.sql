-- Tasks the county gave this device's worker (复查隐患, 入户走访, 核实情况, ...), as they came
-- down with pulls: the task as JSON (`domain::model::Task`), with its status, due date and
-- assignee beside it for Today's list. A completion made on the device is written here and
-- in the outbox in one transaction.

CREATE TABLE tasks (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    status     TEXT NOT NULL,
    due_date   TEXT NOT NULL,
    assignee   TEXT NOT NULL,
    server_seq INTEGER
) STRICT;
CREATE INDEX tasks_open ON tasks(due_date) WHERE status = 'OPEN';
