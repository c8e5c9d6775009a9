-- schema revision 0010

CREATE TABLE audit_events (
	id BIGINT NOT NULL AUTO_INCREMENT, 
	at DATETIME(6) NOT NULL, 
	principal VARCHAR(255), 
	action VARCHAR(255) NOT NULL, 
	project VARCHAR(255), 
	target VARCHAR(1024), 
	outcome VARCHAR(16) NOT NULL, 
	status INTEGER NOT NULL, 
	remote VARCHAR(255), 
	detail MEDIUMTEXT, 
	CONSTRAINT pk_audit_events PRIMARY KEY (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_audit_events_at ON audit_events (at);

CREATE INDEX ix_audit_events_principal_at ON audit_events (principal, at);

CREATE TABLE metadata (
	entity_kind VARCHAR(16) NOT NULL, 
	entity_id VARCHAR(32) NOT NULL, 
	`key` VARCHAR(255) NOT NULL, 
	value JSON, 
	number DOUBLE, 
	CONSTRAINT pk_metadata PRIMARY KEY (entity_kind, entity_id, `key`)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_metadata_entity_kind_key_entity_id ON metadata (entity_kind, `key`, entity_id);

CREATE INDEX ix_metadata_entity_kind_key_number ON metadata (entity_kind, `key`, number);

CREATE TABLE pipelines (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	docstring MEDIUMTEXT, 
	created_at DATETIME(6) NOT NULL, 
	project VARCHAR(255) NOT NULL DEFAULT 'default', 
	CONSTRAINT pk_pipelines PRIMARY KEY (id), 
	CONSTRAINT uq_pipelines_name UNIQUE (name)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_pipelines_project_name ON pipelines (project, name);

CREATE TABLE principals (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	server_admin BOOL NOT NULL, 
	password_hash VARCHAR(255), 
	failed_logins INTEGER NOT NULL DEFAULT '0', 
	locked_until DATETIME(6), 
	created_at DATETIME(6) NOT NULL, 
	disabled_at DATETIME(6), 
	CONSTRAINT pk_principals PRIMARY KEY (id), 
	CONSTRAINT uq_principals_name UNIQUE (name)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE projects (
	name VARCHAR(255) NOT NULL, 
	description MEDIUMTEXT, 
	created_at DATETIME(6) NOT NULL, 
	CONSTRAINT pk_projects PRIMARY KEY (name)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE store_identity (
	id VARCHAR(32) NOT NULL, 
	token VARCHAR(64) NOT NULL, 
	created_at DATETIME(6) NOT NULL, 
	CONSTRAINT pk_store_identity PRIMARY KEY (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE tags (
	entity_kind VARCHAR(16) NOT NULL, 
	entity_id VARCHAR(32) NOT NULL, 
	tag VARCHAR(255) NOT NULL, 
	entity_time DATETIME(6), 
	CONSTRAINT pk_tags PRIMARY KEY (entity_kind, entity_id, tag)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_tags_entity_kind_tag_entity_time_entity_id ON tags (entity_kind, tag, entity_time, entity_id);

CREATE TABLE api_keys (
	id VARCHAR(32) NOT NULL, 
	principal_id VARCHAR(32) NOT NULL, 
	label VARCHAR(255), 
	secret_hash VARCHAR(255) NOT NULL, 
	created_at DATETIME(6) NOT NULL, 
	expires_at DATETIME(6), 
	revoked_at DATETIME(6), 
	last_used_at DATETIME(6), 
	CONSTRAINT pk_api_keys PRIMARY KEY (id), 
	CONSTRAINT fk_api_keys_principal_id_principals FOREIGN KEY(principal_id) REFERENCES principals (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_api_keys_principal_id ON api_keys (principal_id);

CREATE TABLE pipeline_runs (
	id VARCHAR(32) NOT NULL, 
	pipeline_id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	number INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	start_time DATETIME(6) NOT NULL, 
	end_time DATETIME(6), 
	heartbeat_at DATETIME(6), 
	parameters JSON NOT NULL, 
	config JSON NOT NULL, 
	environment JSON NOT NULL, 
	stack JSON NOT NULL, 
	git_sha VARCHAR(64), 
	git_dirty BOOL, 
	code_hash VARCHAR(64), 
	error MEDIUMTEXT, 
	CONSTRAINT pk_pipeline_runs PRIMARY KEY (id), 
	CONSTRAINT uq_pipeline_runs_name UNIQUE (name), 
	CONSTRAINT uq_pipeline_runs_pipeline_id_number UNIQUE (pipeline_id, number), 
	CONSTRAINT fk_pipeline_runs_pipeline_id_pipelines FOREIGN KEY(pipeline_id) REFERENCES pipelines (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_pipeline_runs_pipeline_id_start_time_id_name ON pipeline_runs (pipeline_id, start_time, id, name);

CREATE INDEX ix_pipeline_runs_start_time ON pipeline_runs (start_time);

CREATE INDEX ix_pipeline_runs_status_start_time ON pipeline_runs (status, start_time);

CREATE TABLE project_members (
	project VARCHAR(255) NOT NULL, 
	principal_id VARCHAR(32) NOT NULL, 
	`role` VARCHAR(16) NOT NULL, 
	CONSTRAINT pk_project_members PRIMARY KEY (project, principal_id), 
	CONSTRAINT fk_project_members_project_projects FOREIGN KEY(project) REFERENCES projects (name), 
	CONSTRAINT fk_project_members_principal_id_principals FOREIGN KEY(principal_id) REFERENCES principals (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_project_members_principal_id ON project_members (principal_id);

CREATE TABLE step_runs (
	id VARCHAR(32) NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	entrypoint MEDIUMTEXT, 
	docstring MEDIUMTEXT, 
	parameters JSON NOT NULL, 
	config JSON NOT NULL, 
	source_hash VARCHAR(64), 
	cache_key VARCHAR(64), 
	cache_components JSON, 
	cache_invalidated_at DATETIME(6), 
	cached_from_id VARCHAR(32), 
	start_time DATETIME(6) NOT NULL, 
	end_time DATETIME(6), 
	error MEDIUMTEXT, 
	logs_uri MEDIUMTEXT, 
	error_message MEDIUMTEXT, 
	CONSTRAINT pk_step_runs PRIMARY KEY (id), 
	CONSTRAINT uq_step_runs_run_id_name UNIQUE (run_id, name), 
	CONSTRAINT fk_step_runs_run_id_pipeline_runs FOREIGN KEY(run_id) REFERENCES pipeline_runs (id), 
	CONSTRAINT fk_step_runs_cached_from_id_step_runs FOREIGN KEY(cached_from_id) REFERENCES step_runs (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_step_runs_cache_key_status_end_time ON step_runs (cache_key, status, end_time);

CREATE INDEX ix_step_runs_name_start_time ON step_runs (name, start_time);

CREATE INDEX ix_step_runs_start_time ON step_runs (start_time);

CREATE TABLE artifacts (
	id VARCHAR(32) NOT NULL, 
	uri VARCHAR(2048) NOT NULL, 
	artifact_store VARCHAR(255), 
	type VARCHAR(255) NOT NULL, 
	data_type VARCHAR(1024) NOT NULL, 
	materializer VARCHAR(1024) NOT NULL, 
	materializer_version VARCHAR(64) NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	size BIGINT NOT NULL, 
	producer_step_run_id VARCHAR(32), 
	created_at DATETIME(6) NOT NULL, 
	CONSTRAINT pk_artifacts PRIMARY KEY (id), 
	CONSTRAINT fk_artifacts_producer_step_run_id_step_runs FOREIGN KEY(producer_step_run_id) REFERENCES step_runs (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_artifacts_content_hash ON artifacts (content_hash);

CREATE INDEX ix_artifacts_created_at ON artifacts (created_at);

CREATE INDEX ix_artifacts_producer_step_run_id ON artifacts (producer_step_run_id);

CREATE INDEX ix_artifacts_uri ON artifacts (uri(255));

CREATE TABLE step_io (
	step_run_id VARCHAR(32) NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	artifact_id VARCHAR(32) NOT NULL, 
	CONSTRAINT pk_step_io PRIMARY KEY (step_run_id, direction, name), 
	CONSTRAINT fk_step_io_step_run_id_step_runs FOREIGN KEY(step_run_id) REFERENCES step_runs (id), 
	CONSTRAINT fk_step_io_artifact_id_artifacts FOREIGN KEY(artifact_id) REFERENCES artifacts (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX ix_step_io_artifact_id_direction ON step_io (artifact_id, direction);
