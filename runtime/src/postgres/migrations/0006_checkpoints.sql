CREATE TABLE {{schema}}.checkpoints (
            tree_size bigint PRIMARY KEY CHECK (tree_size >= 0),
            head      text   NOT NULL
        );
