// Query API load test: a dashboard-like mix of reads against one dataset.
//
//   k6 run loadtest/api_read.js   (environment below; see loadtest/README.md)
//
// API_URL, API_TOKEN   the web app and a token of a user who may read DATASET
// DATASET (k6_load)    a dataset with a time column and the fields below (bench load seeds it:
//                      time, region (text), value (float), n (integer))
// VUS (10), SECONDS (10)  closed loop: each VU sends its next request when the last returns
// RATE                 instead: this many iterations a second (open loop), up to MAX_VUS (100)
// P99_MS (100)         p(99) of every request's duration must stay under this
//
// The mix, per iteration: 50% a series (hourly count, or per-minute avg of value over the last
// hour grouped by region), 30% a page of events with a filter (half of them follow
// next_cursor to the second page), 12% describe the dataset, 8% list the datasets.
import http from 'k6/http';
import { check } from 'k6';

const API_URL = (__ENV.API_URL || '').replace(/\/$/, '');
const API_TOKEN = __ENV.API_TOKEN || '';
const DATASET = __ENV.DATASET || 'k6_load';
const VUS = parseInt(__ENV.VUS || '10', 10);
const SECONDS = parseFloat(__ENV.SECONDS || '10');
const RATE = parseInt(__ENV.RATE || '0', 10);
const P99_MS = parseFloat(__ENV.P99_MS || '100');

const scenario = RATE > 0
  ? {
    executor: 'constant-arrival-rate',
    rate: RATE,
    timeUnit: '1s',
    duration: `${SECONDS}s`,
    preAllocatedVUs: VUS,
    maxVUs: parseInt(__ENV.MAX_VUS || '100', 10),
  }
  : { executor: 'constant-vus', vus: VUS, duration: `${SECONDS}s` };

export const options = {
  scenarios: { reads: { ...scenario, exec: 'read' } },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    http_req_duration: [`p(99)<${P99_MS}`],
  },
};

const params = (name) => ({
  headers: { Authorization: `Bearer ${API_TOKEN}` },
  tags: { name }, // one series per endpoint in the summary, not one per URL
});
const base = `${API_URL}/api/v1/datasets`;
const REGIONS = ['north', 'south', 'east', 'west'];

function ok(response, what) {
  return check(response, { [`${what} 200`]: (r) => r.status === 200 });
}

function series() {
  const query = Math.random() < 0.5
    ? 'bucket=hour&agg=count'
    : `bucket=minute&agg=avg&field=value&group_by=region&from=${hourAgo()}`;
  ok(http.get(`${base}/${DATASET}/series?${query}`, params('series')), 'series');
}

function events() {
  const region = REGIONS[Math.floor(Math.random() * REGIONS.length)];
  const query = `limit=50&filter=region:eq:${region}&filter=value:gte:10`;
  const first = http.get(`${base}/${DATASET}/events?${query}`, params('events'));
  if (!ok(first, 'events') || Math.random() < 0.5) return;
  const cursor = first.json('next_cursor');
  if (cursor) {
    const next = `${base}/${DATASET}/events?${query}&cursor=${encodeURIComponent(cursor)}`;
    ok(http.get(next, params('events next page')), 'events next page');
  }
}

function hourAgo() {
  return encodeURIComponent(new Date(Date.now() - 3600 * 1000).toISOString());
}

export function read() {
  const pick = Math.random();
  if (pick < 0.5) series();
  else if (pick < 0.8) events();
  else if (pick < 0.92) ok(http.get(`${base}/${DATASET}`, params('describe')), 'describe');
  else ok(http.get(base, params('list')), 'list');
}
