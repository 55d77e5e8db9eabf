// Live hub load test: VUs hold WebSocket connections subscribed to one dataset while a writer
// pushes batches through the push API; every VU must receive points, in order, with no errors.
//
//   k6 run loadtest/live_ws.js   (environment below; see loadtest/README.md)
//
// API_URL, API_TOKEN   the web app and an analyst's API token: each VU asks GET
//                      /api/v1/live/token for its own hub token, and a writer scenario pushes
//                      BATCH rows RATE times a second to POST /api/v1/datasets/DATASET/events
// LIVE_TOKENS          instead of API_URL: comma-separated hub tokens, one per VU (single use,
//                      valid INSIGHTWAVE_LIVE_TOKEN_SECONDS), with HUB_URL; rows then come
//                      from elsewhere (EXPECT_POINTS=0 if none do)
// HUB_URL              ws://host:port/live (default: the url GET /api/v1/live/token returns)
// DATASET (k6_live), VUS (10), HOLD_SECONDS (10), RATE (5), BATCH (10), EXPECT_POINTS (1)
import http from 'k6/http';
import ws from 'k6/ws';
import { check, fail } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const API_URL = (__ENV.API_URL || '').replace(/\/$/, '');
const API_TOKEN = __ENV.API_TOKEN || '';
const LIVE_TOKENS = (__ENV.LIVE_TOKENS || '').split(',').filter((token) => token);
const HUB_URL = __ENV.HUB_URL || '';
const DATASET = __ENV.DATASET || 'k6_live';
const VUS = parseInt(__ENV.VUS || '10', 10);
const HOLD_SECONDS = parseFloat(__ENV.HOLD_SECONDS || '10');
const RATE = parseInt(__ENV.RATE || '5', 10);
const BATCH = parseInt(__ENV.BATCH || '10', 10);
const WRITES = Boolean(API_URL && API_TOKEN && RATE > 0);
const EXPECT_POINTS = (__ENV.EXPECT_POINTS || '1') !== '0';
const WRITER_DELAY = 2; // seconds: the listeners subscribe first

const liveRows = new Counter('live_rows');
const liveOutOfOrder = new Counter('live_out_of_order');
const liveErrors = new Counter('live_errors');
const pushToReceipt = new Trend('live_push_to_receipt', true);

const scenarios = {
  listeners: {
    executor: 'per-vu-iterations',
    exec: 'listen',
    vus: VUS,
    iterations: 1,
    maxDuration: `${Math.ceil(HOLD_SECONDS + WRITER_DELAY + 30)}s`,
  },
};
if (WRITES) {
  scenarios.writer = {
    executor: 'constant-arrival-rate',
    exec: 'push',
    rate: RATE,
    timeUnit: '1s',
    duration: `${HOLD_SECONDS}s`,
    startTime: `${WRITER_DELAY}s`,
    preAllocatedVUs: 2,
    maxVUs: 10,
  };
}

export const options = {
  scenarios,
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    ws_connecting: ['p(99)<1000'],
    live_out_of_order: ['count==0'],
    live_errors: ['count==0'],
    ...(WRITES ? { live_push_to_receipt: ['p(99)<2000'], live_rows: ['count>0'] } : {}),
  },
};

const bearer = { headers: { Authorization: `Bearer ${API_TOKEN}` } };

let pushed = 0; // rows this VU has pushed: with its number, what makes each row new

function rows(count) {
  const now = Date.now();
  return Array.from({ length: count }, () => ({
    time: new Date(now).toISOString(),
    vu: __VU,
    seq: pushed++,
    value: Math.random(),
    sent_ms: now,
  }));
}

function pushRows(count) {
  const response = http.post(
    `${API_URL}/api/v1/datasets/${DATASET}/events`,
    JSON.stringify(rows(count)),
    { headers: { ...bearer.headers, 'Content-Type': 'application/json' } },
  );
  check(response, { 'push accepted': (r) => r.status === 200 || r.status === 201 });
}

export function setup() {
  if (WRITES) {
    pushRows(1); // the dataset exists before anyone subscribes
  } else if (LIVE_TOKENS.length < VUS) {
    fail(`LIVE_TOKENS holds ${LIVE_TOKENS.length} tokens for ${VUS} VUs (or set API_URL)`);
  }
}

function hubToken() {
  if (LIVE_TOKENS.length) {
    return { token: LIVE_TOKENS[__VU - 1], url: HUB_URL };
  }
  const response = http.get(`${API_URL}/api/v1/live/token`, bearer);
  check(response, { 'live token issued': (r) => r.status === 200 });
  const body = response.json();
  return { token: body.token, url: HUB_URL || body.url };
}

export function listen() {
  const { token, url } = hubToken();
  let subscribed = false;
  let received = 0;
  let lastId = 0;
  const response = ws.connect(`${url}?token=${encodeURIComponent(token)}`, {}, (socket) => {
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'subscribe', dataset: DATASET, since: null }));
    });
    socket.on('message', (data) => {
      const message = JSON.parse(data);
      if (message.type === 'subscribed') {
        subscribed = true;
        lastId = message.last_id || 0;
      } else if (message.type === 'points') {
        if (message.ids[0] <= lastId) liveOutOfOrder.add(1);
        lastId = message.last_id;
        received += message.ids.length;
        liveRows.add(message.ids.length);
        const sent = message.values.sent_ms;
        if (sent) pushToReceipt.add(Date.now() - sent[sent.length - 1]);
      } else if (message.type === 'error' || message.type === 'resync') {
        liveErrors.add(1, { type: message.type, code: message.code || message.reason });
      }
    });
    socket.setTimeout(() => socket.close(), (HOLD_SECONDS + WRITER_DELAY + 1) * 1000);
  });
  check(response, { 'upgraded to a WebSocket': (r) => r && r.status === 101 });
  check(subscribed, { subscribed: (ok) => ok });
  if (EXPECT_POINTS) check(received, { 'received points': (count) => count > 0 });
}

export function push() {
  pushRows(BATCH);
}
