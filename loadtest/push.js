// Push ingest load test: batches of JSON rows to POST /api/v1/datasets/DATASET/events, each
// with its own Idempotency-Key; every REPLAY_EVERY-th push sends the previous batch again
// under the same key and must be answered from the stored response (Idempotent-Replayed).
//
//   k6 run loadtest/push.js   (environment below; see loadtest/README.md)
//
// API_URL, API_TOKEN   the web app and an analyst's (or admin's) API token
// DATASET (k6_push)    created by the first push when new
// RATE (20), BATCH (100)  pushes a second (open loop) and rows a push
// SECONDS (10), VUS (10), MAX_VUS (50)
// REPLAY_EVERY (10)    0: never replay
// P99_MS (100)         p(99) of every push's duration must stay under this
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

const API_URL = (__ENV.API_URL || '').replace(/\/$/, '');
const API_TOKEN = __ENV.API_TOKEN || '';
const DATASET = __ENV.DATASET || 'k6_push';
const RATE = parseInt(__ENV.RATE || '20', 10);
const BATCH = parseInt(__ENV.BATCH || '100', 10);
const SECONDS = parseFloat(__ENV.SECONDS || '10');
const REPLAY_EVERY = parseInt(__ENV.REPLAY_EVERY || '10', 10);
const P99_MS = parseFloat(__ENV.P99_MS || '100');
const RUN = `${Date.now()}`; // keys and rows of this run differ from an earlier run's

export const options = {
  scenarios: {
    pushes: {
      executor: 'constant-arrival-rate',
      exec: 'push',
      rate: RATE,
      timeUnit: '1s',
      duration: `${SECONDS}s`,
      preAllocatedVUs: parseInt(__ENV.VUS || '10', 10),
      maxVUs: parseInt(__ENV.MAX_VUS || '50', 10),
    },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    http_req_duration: [`p(99)<${P99_MS}`],
    rows_loaded: ['count>0'],
  },
};

const rowsLoaded = new Counter('rows_loaded');
const REGIONS = ['north', 'south', 'east', 'west'];
const url = `${API_URL}/api/v1/datasets/${DATASET}/events`;
let last = null; // this VU's previous push: { key, body }

function batch(number) {
  const now = Date.now();
  return JSON.stringify(Array.from({ length: BATCH }, (_, i) => ({
    time: new Date(now - i).toISOString(),
    region: REGIONS[(number + i) % REGIONS.length],
    value: Math.round(Math.random() * 10000) / 100,
    n: number * BATCH + i,
    source: `k6-${RUN}-${__VU}`,
  })));
}

function send(key, body, name) {
  return http.post(url, body, {
    headers: {
      Authorization: `Bearer ${API_TOKEN}`,
      'Content-Type': 'application/json',
      'Idempotency-Key': key,
    },
    tags: { name },
  });
}

export function setup() {
  // The dataset (and its inferred schema) exists before the VUs push at once.
  const response = send(`k6-${RUN}-setup`, batch(0), 'setup');
  check(response, { 'setup push accepted': (r) => r.status === 200 || r.status === 201 });
}

export function push() {
  const number = exec.scenario.iterationInTest + 1;
  if (last && REPLAY_EVERY > 0 && number % REPLAY_EVERY === 0) {
    const replay = send(last.key, last.body, 'replay');
    check(replay, {
      'replay answered from the stored response': (r) => r.status === 200
        && r.headers['Idempotent-Replayed'] === 'true',
    });
    return;
  }
  const key = `k6-${RUN}-${number}`;
  const body = batch(number);
  const response = send(key, body, 'push');
  const accepted = check(response, {
    'push accepted': (r) => r.status === 200 || r.status === 201,
    'push loaded every row': (r) => r.status >= 300 || r.json('rows_loaded') === BATCH,
  });
  if (accepted) rowsLoaded.add(BATCH);
  last = { key, body };
}
