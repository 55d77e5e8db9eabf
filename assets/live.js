// Live charts in the browser: each keeps a hub connection, subscribes, appends pushed points.
// A page may hold several (app/components/live_chart.py); each chart's callbacks get the id of
// its WebSocket, {type: "live-chart-ws", key: KEY}, and keep their own state under KEY.
// Messages follow the JSON Schemas in app/hub/schema/; no server round trip per message.
(function () {
  "use strict";
  const OPEN = 1;
  const CLOSED = 3;
  const none = () => window.dash_clientside.no_update;
  // Errors that refuse a subscription, or end one (app/hub/schema/error.json).
  const REFUSALS = new Set(["not_found", "forbidden"]);

  // What each chart's socket is doing, by chart key.
  const connections = new Map();

  function newConnection() {
    return {
      attempt: 0, // failed connection attempts in a row
      nextTry: 0, // no new attempt before this time (ms)
      fetching: false, // a token request is under way
      closedAt: null, // timeStamp of the last close event seen
      subscribed: null, // dataset the open socket is subscribed to
      drawn: null, // the window the server drew (dataset, draw, fields, size)
      lastId: null, // id of the newest point drawn
      paused: false,
      reloading: false, // a missed message was noticed; waiting for the server's new window
      signedOut: false,
      refused: false, // the hub refused or ended the subscription: no retry until a new window
      sent: 0, // messages sent: each carries a new ref, so the WebSocket component sends repeats
    };
  }

  function connectionOf(socketId) {
    const key = socketId && typeof socketId === "object" ? String(socketId.key) : "";
    if (!connections.has(key)) {
      connections.set(key, newConnection());
    }
    return connections.get(key);
  }

  function backoff(attempt) {
    return Math.min(30000, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);
  }

  function requestSocket(conn, socketId) {
    conn.fetching = true;
    fetch("/api/v1/live/token", { credentials: "same-origin", cache: "no-store" })
      .then((response) => {
        if (response.status === 401) {
          conn.signedOut = true;
        }
        if (!response.ok) {
          throw new Error("live token: HTTP " + response.status);
        }
        return response.json();
      })
      .then((body) => {
        const url = body.url + "?token=" + encodeURIComponent(body.token);
        // set_props finds a component by a dict id as well as by a string one.
        window.dash_clientside.set_props(socketId, { url: url });
      })
      .catch(() => {
        conn.attempt += 1;
        conn.nextTry = Date.now() + backoff(conn.attempt);
      })
      .finally(() => {
        conn.fetching = false;
      });
  }

  // Turn a points message into Plotly extendData for the traces of `fields`, keeping only
  // points newer than `lastId`; null when nothing is new. Pure, so tests can call it.
  function pointsToExtendData(message, fields, lastId, window) {
    let start = 0;
    while (start < message.ids.length && lastId !== null && message.ids[start] <= lastId) {
      start += 1;
    }
    if (start === message.ids.length || fields.length === 0) {
      return null;
    }
    // Points come in id (commit) order; a batch may hold times out of order, so draw by time.
    const order = message.ts
      .map((_, index) => index)
      .slice(start)
      .sort((a, b) => (message.ts[a] < message.ts[b] ? -1 : message.ts[a] > message.ts[b] ? 1 : a - b));
    const xs = order.map((index) => message.ts[index]);
    const ys = fields.map((field) => {
      const column = message.values[field];
      return order.map((index) => (column ? column[index] : null));
    });
    return [{ x: fields.map(() => xs), y: ys }, fields.map((_, index) => index), window];
  }

  function windowKey(state) {
    return [state.dataset, state.drawn, state.fields.join(","), state.window].join("|");
  }

  // The server drew a fresh window: points follow from its last id, on a new subscription.
  function adopt(conn, state) {
    const key = windowKey(state);
    if (conn.drawn !== key) {
      conn.drawn = key;
      conn.lastId = state.last_id === undefined ? null : state.last_id;
      conn.reloading = false;
      conn.subscribed = null;
      conn.refused = false; // the server drew it: it was visible then, so try the hub again
    }
  }

  function message(conn, type, dataset, extra) {
    conn.sent += 1;
    return JSON.stringify(Object.assign({ type: type, dataset: dataset, ref: conn.sent }, extra));
  }

  function status(text, color) {
    return [text, color];
  }

  function connect(state, socket, paused, _tick, socketId) {
    const conn = connectionOf(socketId);
    const readyState = socket ? socket.readyState : CLOSED;
    if (conn.signedOut) {
      return [none(), ...status("signed out", "red")];
    }
    if (!state) {
      return [none(), ...status("no dataset", "gray")];
    }
    adopt(conn, state);
    conn.paused = Boolean(paused);
    if (readyState === CLOSED) {
      conn.subscribed = null;
      if (socket && socket.timeStamp !== undefined && socket.timeStamp !== conn.closedAt) {
        conn.closedAt = socket.timeStamp;
        if (socket.code !== undefined) {
          conn.attempt += 1; // a socket that was open (or tried to open) has closed
          conn.nextTry = Date.now() + backoff(conn.attempt);
        }
      }
      if (!conn.fetching && Date.now() >= conn.nextTry) {
        requestSocket(conn, socketId);
      }
      const text = conn.attempt === 0 ? "connecting" : conn.attempt > 3 ? "offline" : "reconnecting";
      return [none(), ...status(text, conn.attempt > 3 ? "red" : "yellow")];
    }
    if (readyState !== OPEN) {
      return [none(), ...status("connecting", "yellow")];
    }
    conn.attempt = 0;
    if (conn.paused) {
      if (conn.subscribed !== null) {
        const sent = message(conn, "unsubscribe", conn.subscribed);
        conn.subscribed = null;
        return [sent, ...status("paused", "gray")];
      }
      return [none(), ...status("paused", "gray")];
    }
    if (conn.refused) {
      return [none(), ...status("not available", "red")];
    }
    if (conn.subscribed !== null && conn.subscribed !== state.dataset) {
      const sent = message(conn, "unsubscribe", conn.subscribed);
      conn.subscribed = null; // the next tick subscribes to the dataset now shown
      return [sent, ...status("switching", "yellow")];
    }
    if (conn.subscribed === null) {
      conn.subscribed = state.dataset;
      const sent = message(conn, "subscribe", state.dataset, { since: conn.lastId });
      return [sent, ...status("live", "green")];
    }
    return [none(), ...status("live", "green")];
  }

  function receive(event, state, resyncs, socketId) {
    if (!event || !state) {
      return [none(), none(), none()];
    }
    const conn = connectionOf(socketId);
    adopt(conn, state); // a message may come before connect has seen a newly drawn window
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return [none(), none(), none()];
    }
    // Dash hands the callback the newest message only: two arriving together lose the first.
    // The hub says which id each message follows, so a lost one is noticed and reloaded.
    const behind = (id) => conn.lastId !== null && id !== null && id > conn.lastId;
    if (message.dataset === state.dataset && !conn.paused) {
      const missed =
        (message.type === "points" && behind(message.after)) ||
        (message.type === "subscribed" && behind(message.last_id));
      if (missed) {
        conn.reloading = true; // nothing more is drawn until the reloaded window arrives
        return [none(), (resyncs || 0) + 1, "Catching up…"];
      }
    }
    if (message.type === "points" && message.dataset === state.dataset && !conn.paused) {
      if (conn.reloading) {
        return [none(), none(), none()];
      }
      const update = pointsToExtendData(message, state.fields, conn.lastId, state.window);
      conn.lastId = Math.max(conn.lastId || 0, message.last_id);
      if (update === null) {
        return [none(), none(), none()];
      }
      const when = `${new Date().toISOString().slice(11, 19)} UTC`; // as every other time shown
      return [update, none(), `Last point at ${when} (id ${message.last_id})`];
    }
    if (message.type === "resync" && message.dataset === state.dataset) {
      return [none(), (resyncs || 0) + 1, "Catching up…"];
    }
    if (message.type === "error") {
      if (message.code === "session_ended") {
        conn.signedOut = true;
      }
      if (message.dataset === state.dataset && REFUSALS.has(message.code)) {
        conn.subscribed = null; // refused, or ended by the hub (access lost): not asked again
        conn.refused = true;
      }
      return [none(), none(), "Live: " + message.message];
    }
    return [none(), none(), none()];
  }

  function togglePause(_clicks, paused) {
    const next = !paused;
    return [next, next ? "Resume" : "Pause"];
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    insightwave_live: { connect, receive, togglePause, pointsToExtendData },
  });
})();
