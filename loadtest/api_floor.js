// The web tier's floor: the cheapest signed-in API request (GET /api/v1/me: bearer token
// checked against the database, a small JSON answer; no dataset read), as fast as the VUs go.
// Beside api_read.js it tells how much of a read's cost is the query and how much is the
// request itself (HTTP, Flask, sign-in, headers, logging, metrics).
//
//   k6 run loadtest/api_floor.js   (API_URL, API_TOKEN, VUS (10), SECONDS (10), P99_MS (100))
import http from 'k6/http';
import { check } from 'k6';

const API_URL = (__ENV.API_URL || '').replace(/\/$/, '');
const API_TOKEN = __ENV.API_TOKEN || '';

export const options = {
  scenarios: {
    floor: {
      executor: 'constant-vus',
      exec: 'me',
      vus: parseInt(__ENV.VUS || '10', 10),
      duration: `${parseFloat(__ENV.SECONDS || '10')}s`,
    },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    http_req_duration: [`p(99)<${parseFloat(__ENV.P99_MS || '100')}`],
  },
};

export function me() {
  const response = http.get(`${API_URL}/api/v1/me`, {
    headers: { Authorization: `Bearer ${API_TOKEN}` },
  });
  check(response, { 'me 200': (r) => r.status === 200 });
}
