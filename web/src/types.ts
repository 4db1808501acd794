// The API's shapes, as docs/api.md describes them (only what the dashboard reads).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Status = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export const STATUSES: Status[] = ["queued", "running", "succeeded", "failed", "cancelled"];
export const ACTIVE: ReadonlySet<string> = new Set(["queued", "running"]);

export type Summary = { [key: string]: Json };

export interface Job {
  id: string;
  name: string;
  status: Status;
  spec: JsonObject;
  queue: string;
  attempt: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  summary: Summary | null;
  tags: string[];
  sweep_id: string | null;
  sweep_point: JsonObject | null;
}

export interface JobsPage {
  data: Job[];
  next_cursor: string | null;
}

export interface Downsampling {
  method: string;
  buckets: number;
  bucket_width: number;
  points_in_range: number;
}

export interface Series {
  name: string;
  steps: number[];
  values: (number | null)[];
  downsampled?: Downsampling | null;
  smoothed?: (number | null)[] | null;
}

export interface Metrics {
  job_id: string;
  series: Series[];
}

export interface SeriesInfo {
  name: string;
  points: number;
  first_step: number | null;
  last_step: number | null;
}

export interface ComparedJob {
  id: string;
  name: string;
  status: string;
  seed: number;
  differs: JsonObject;
  values: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
  summary: Summary | null;
}

export interface SeedGroup {
  jobs: string[];
  seeds: number[];
  differs: JsonObject;
  mean: (number | null)[];
  low: (number | null)[];
  high: (number | null)[];
  band: string;
}

export interface RankedJob {
  rank: number;
  id: string;
  name: string;
  value: number | null;
  summary: Summary | null;
}

export interface Comparison {
  metric: string;
  steps: number[];
  bucket_width: number;
  method: string;
  rank_by: string;
  jobs: ComparedJob[];
  groups: SeedGroup[];
  ranking: RankedJob[];
}

export interface LeaderboardEntry {
  rank: number;
  job_id: string;
  status: string;
  point: JsonObject;
  seed: number;
  value: Json;
  outcome: string | null;
}

export interface SweepPoint {
  point: JsonObject;
  jobs: string[];
  seeds: number[];
  values: number;
  mean: number | null;
  min: number | null;
  max: number | null;
}

export interface Fusion {
  enabled?: boolean;
  tasks?: string[][];
  alone?: { job_id: string; reason: string }[];
}

export interface Sweep {
  id: string;
  name: string;
  status: "queued" | "running" | "finished";
  size: number;
  tags: string[];
  created_at: string;
  counts: Record<string, number>;
  request: JsonObject;
  fusion?: Fusion | null;
  rank_by?: string | null;
  leaderboard?: LeaderboardEntry[] | null;
  by_point?: SweepPoint[] | null;
}

export interface SweepsPage {
  data: Sweep[];
  next_cursor: string | null;
}

export interface Dataset {
  id: string;
  name: string;
  filename: string;
  format: string;
  target: string | null;
  rows: number;
  features: number;
  classes: number | null;
  size_bytes: number;
  created_at: string;
}

export interface LogLine {
  attempt: number;
  at: string;
  level: string;
  logger: string;
  message: string;
}

export interface ValidationDetail {
  loc: (string | number)[];
  msg: string;
  type?: string;
}

// GET /v1/catalog
export interface FieldSchema {
  type?: string;
  enum?: Json[];
  default?: Json;
  items?: FieldSchema;
  anyOf?: FieldSchema[];
  title?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
  $ref?: string;
  [key: string]: unknown;
}

export interface KindEntry {
  kind: string;
  description: string;
  fields: Record<string, FieldSchema>;
  required: string[];
}

export interface Keyword {
  name: string;
  required: boolean;
  default?: Json;
  type: string;
}

export interface ClassEntry {
  name: string;
  description: string;
  parameters: Keyword[];
}

export interface LossEntry {
  name: string;
  description: string;
  task: string | null;
}

export interface Catalog {
  models: KindEntry[];
  data: KindEntry[];
  sklearn_datasets: string[];
  synthetic_generators: string[];
  losses: LossEntry[];
  optimizers: ClassEntry[];
  schedulers: ClassEntry[];
}
