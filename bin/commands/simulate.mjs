// `pms-events simulate`: a PMS publishing a hotel day for a chain's properties: reservations
// made and changed, arrivals checked in with a room, room moves, departures checked out,
// housekeeping turning rooms around and folio postings, each with the old and new values a
// PMS reports. Every event has a stable `uniqueEventId`, so a batch resent after an outage is
// never stored twice.
import { parseFlags, credentials, Tokens, DEMO_CLIENTS, LOCAL_URL, UsageError, Fatal, backoff, sleep, callJson, demoProperties, isLoopback } from "../lib/service.mjs";

export const usage = `pms-events simulate --chain CODE [options]
  --url URL          the service (default ${LOCAL_URL})
  --rate N           events per second (default 50)
  --duration S       seconds to run (default: until interrupted)
  --batch N          at most N events per request (default 100)
  --hotels CODES     the properties to simulate (default: the publisher's granted properties,
                     or the demo configuration's for a local server)
  --seed TEXT        names the run: the same seed and chain give the same uniqueEventIds
  --client-id ID --app-key KEY --enterprise ID   (or PMS_EVENTS_* variables; the secret only
                     from PMS_EVENTS_CLIENT_SECRET; against a local server the demo pms-core-001)
Prints one JSON summary line on stdout at the end: {"chainCode","seed","sent","firstOffset","lastOffset"}
(a rerun with the same seed sends the same uniqueEventIds: the service answers their first offsets).`;

const FLAGS = {
  url: "string", chain: "string", rate: "number", duration: "number", batch: "number", hotels: "string", seed: "string",
  "client-id": "string", "app-key": "string", enterprise: "string",
};

export async function run(argv) {
  const flags = parseFlags(argv, FLAGS);
  flags.url = (flags.url ?? LOCAL_URL).replace(/\/$/, "");
  if (!flags.chain) throw new UsageError("--chain is required");
  const rate = flags.rate ?? 50;
  const maxBatch = Math.min(500, Math.max(1, Math.floor(flags.batch ?? 100)));
  if (rate <= 0 || rate > 100_000) throw new UsageError("--rate must be within 0 < rate <= 100000");
  const tokens = new Tokens(flags.url, credentials(flags, DEMO_CLIENTS.publisher), "urn:pms:publish");
  const hotels = await properties(flags, tokens);
  const seed = flags.seed ?? Date.now().toString(36);
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(seed)) throw new UsageError("--seed must be 1 to 40 letters, digits, - or _");
  const day = new HotelDay(flags.chain, hotels, seed);

  const started = Date.now();
  const endAt = flags.duration !== undefined ? started + flags.duration * 1000 : Infinity;
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => { stopping = true; });
  const stats = { sent: 0, firstOffset: undefined, lastOffset: undefined };
  const line = new StatusLine();
  const TICK_MS = 100;
  let due = 0;
  while (!stopping && Date.now() < endAt) {
    const tickStart = Date.now();
    // Events owed since the start at the target rate; sent in batches of at most maxBatch.
    due = Math.floor(((tickStart - started) / 1000) * rate) - stats.sent;
    while (due > 0 && !stopping) {
      const batch = day.next(Math.min(due, maxBatch));
      const offsets = await publish(flags, tokens, batch, () => stopping || Date.now() > endAt + 30_000);
      if (!offsets) break;
      stats.sent += batch.length;
      due -= batch.length;
      stats.firstOffset ??= offsets[0];
      stats.lastOffset = offsets[offsets.length - 1];
      line.show(`simulate ${flags.chain}: ${((stats.sent * 1000) / Math.max(1, Date.now() - started)).toFixed(1)} events/s, ${stats.sent} sent, last offset ${stats.lastOffset}`);
    }
    await sleep(Math.max(0, TICK_MS - (Date.now() - tickStart)));
  }
  line.end();
  process.stdout.write(JSON.stringify({ chainCode: flags.chain, seed, ...stats }) + "\n");
  return 0;
}

/** Publishes one batch; a failure that may pass (5xx, network) resends the same events. */
async function publish(flags, tokens, batch, givingUp) {
  let res;
  for (let attempt = 0; ; attempt++) {
    try {
      res = await callJson(flags.url, await tokens.get({ fresh: res?.status === 401 }), "POST", `/events/v1/chains/${encodeURIComponent(flags.chain)}/events`, batch);
    } catch (e) {
      if (e instanceof Fatal) throw e;
      res = { status: 0, body: { message: e.message } };
    }
    if (res.status === 200) return res.body.offsets;
    if (res.status >= 400 && res.status < 500 && res.status !== 401 && res.status !== 429) {
      throw new Fatal(`publish refused: ${res.status} ${res.body.error ?? ""} ${res.body.message ?? ""} ${JSON.stringify(res.body.errors ?? "")}`);
    }
    if (givingUp()) return undefined;
    const wait = backoff(attempt, 250, 10_000);
    process.stderr.write(`\npms-events simulate: publish answered ${res.status} (${res.body.message ?? res.body.error ?? ""}); resending the same batch in ${wait} ms\n`);
    await sleep(wait);
  }
}

/** The properties to simulate: --hotels, the publisher's property grant, or the demo configuration's. */
async function properties(flags, tokens) {
  if (flags.hotels) return flags.hotels.split(",").filter(Boolean);
  const claims = await tokens.claims();
  const grant = (claims.chains ?? []).find((c) => c.chain === flags.chain);
  if (!grant) throw new Fatal(`the publisher's token does not grant chain ${flags.chain}`);
  if (grant.properties?.length) return grant.properties;
  const demo = isLoopback(flags.url) ? demoProperties(flags.chain) : undefined;
  if (demo?.length) return demo;
  throw new UsageError(`the grant of chain ${flags.chain} covers every property: name them with --hotels`);
}

/** A small deterministic generator, so a seed names a run. */
function random(seedText) {
  let h = 1779033703 ^ seedText.length;
  for (let i = 0; i < seedText.length; i++) h = Math.imul(h ^ seedText.charCodeAt(i), 3432918353), (h = (h << 13) | (h >>> 19));
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST_NAMES = ["Ana", "Ben", "Chloé", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena", "Mateo", "Noor", "Olga", "Priya"];
const LAST_NAMES = ["Almeida", "Brown", "Chen", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ivanova", "Jensen", "Kowalski", "Larsen", "Müller", "Nakamura", "Okafor", "Patel"];
const ROOM_TYPES = ["KING", "TWIN", "SUITE"];
const CHARGES = [["ROOM", "Room charge", 140, 260], ["FB", "Restaurant", 18, 95], ["BAR", "Bar", 7, 40], ["MINIBAR", "Minibar", 4, 25], ["SPA", "Spa", 45, 160], ["PARK", "Parking", 15, 30]];

/**
 * The hotels' state and the next events: a reservation is made, may change, arrives (check-in
 * with a vacant clean room), may move rooms and run up charges, departs (check-out), and its
 * room goes dirty until housekeeping cleans and inspects it. The mix follows a compressed day.
 */
class HotelDay {
  constructor(chain, hotels, seed) {
    this.rand = random(`${seed}/${chain}`);
    this.chain = chain;
    this.seed = seed;
    this.sequence = 0;
    this.hotels = hotels.map((code) => ({
      code,
      rooms: Array.from({ length: 24 }, (_, i) => ({ number: String(100 * (1 + Math.floor(i / 8)) + 1 + (i % 8)), type: ROOM_TYPES[i % 3], status: "INSPECTED", guest: undefined })),
      reservations: new Map(),
      nextReservation: 1,
    }));
  }

  pick(list) { return list[Math.floor(this.rand() * list.length)]; }

  next(n) {
    const events = [];
    while (events.length < n) {
      const event = this.event(this.pick(this.hotels));
      if (event) events.push(event);
    }
    return events;
  }

  envelope(hotel, moduleName, eventName, primaryKey, detail) {
    this.sequence++;
    return {
      moduleName,
      eventName,
      primaryKey,
      timestamp: new Date().toISOString(),
      hotelId: hotel.code,
      publisherId: "pms-events-simulator",
      actionInstanceId: `${this.seed}-${this.sequence}`,
      uniqueEventId: `sim-${this.seed}-${this.chain}-${this.sequence}`,
      detail: detail.map(([elementName, oldValue, newValue, elementType = "String"], i) => ({
        elementName, elementType, elementSequence: i + 1, elementRole: "Primary",
        oldValue: oldValue === undefined ? null : String(oldValue), newValue: newValue === undefined ? null : String(newValue),
      })),
    };
  }

  event(hotel) {
    const all = [...hotel.reservations.values()];
    const reserved = all.filter((r) => r.status === "RESERVED");
    const inHouse = all.filter((r) => r.status === "CHECKED_IN");
    const dirty = hotel.rooms.filter((r) => r.status === "DIRTY" || r.status === "CLEAN");
    const vacant = hotel.rooms.filter((r) => !r.guest && r.status === "INSPECTED");
    // The weights of what happens next; an action without a subject is skipped.
    const roll = this.rand();
    if (roll < 0.18 || all.length < 6) return this.newReservation(hotel);
    if (roll < 0.3 && reserved.length) return this.changeReservation(hotel, this.pick(reserved));
    if (roll < 0.48 && reserved.length && vacant.length) return this.checkIn(hotel, this.pick(reserved), this.pick(vacant));
    if (roll < 0.53 && inHouse.length && vacant.length) return this.roomMove(hotel, this.pick(inHouse), this.pick(vacant));
    if (roll < 0.72 && inHouse.length) return this.posting(hotel, this.pick(inHouse));
    if (roll < 0.86 && inHouse.length) return this.checkOut(hotel, this.pick(inHouse));
    if (dirty.length) return this.housekeeping(hotel, this.pick(dirty));
    return this.newReservation(hotel);
  }

  newReservation(hotel) {
    const id = `${hotel.code}-${this.seed}-${String(hotel.nextReservation++).padStart(6, "0")}`;
    const nights = 1 + Math.floor(this.rand() * 5);
    const arrival = new Date(Date.now() + Math.floor(this.rand() * 30) * 86_400_000).toISOString().slice(0, 10);
    const departure = new Date(Date.parse(arrival) + nights * 86_400_000).toISOString().slice(0, 10);
    const r = { id, status: "RESERVED", guest: `${this.pick(FIRST_NAMES)} ${this.pick(LAST_NAMES)}`, arrival, departure, adults: 1 + Math.floor(this.rand() * 2), roomType: this.pick(ROOM_TYPES), balance: 0, room: undefined };
    hotel.reservations.set(id, r);
    return this.envelope(hotel, "Reservation", "NEW_RESERVATION", id, [
      ["ReservationStatus", undefined, "RESERVED"], ["GuestName", undefined, r.guest], ["ArrivalDate", undefined, arrival, "Date"],
      ["DepartureDate", undefined, departure, "Date"], ["Adults", undefined, r.adults, "Integer"], ["RoomType", undefined, r.roomType],
    ]);
  }

  changeReservation(hotel, r) {
    if (this.rand() < 0.15) {
      hotel.reservations.delete(r.id);
      return this.envelope(hotel, "Reservation", "CANCEL_RESERVATION", r.id, [["ReservationStatus", "RESERVED", "CANCELLED"], ["CancellationReason", undefined, this.pick(["Change of plans", "Duplicate booking", "Travel cancelled"])]]);
    }
    if (this.rand() < 0.5) {
      const old = r.departure;
      r.departure = new Date(Date.parse(old) + 86_400_000).toISOString().slice(0, 10);
      return this.envelope(hotel, "Reservation", "UPDATE_RESERVATION", r.id, [["DepartureDate", old, r.departure, "Date"], ["Adults", r.adults, r.adults, "Integer"]]);
    }
    const old = r.adults;
    r.adults = old === 1 ? 2 : 1;
    return this.envelope(hotel, "Reservation", "UPDATE_RESERVATION", r.id, [["Adults", old, r.adults, "Integer"], ["DepartureDate", r.departure, r.departure, "Date"]]);
  }

  checkIn(hotel, r, room) {
    r.status = "CHECKED_IN";
    r.room = room;
    room.guest = r.id;
    return this.envelope(hotel, "Reservation", "CHECKIN", r.id, [
      ["ReservationStatus", "RESERVED", "CHECKED_IN"], ["RoomNumber", undefined, room.number], ["RoomType", r.roomType, room.type],
      ["GuestName", r.guest, r.guest], ["KeyCardsIssued", undefined, 1 + Math.floor(this.rand() * 2), "Integer"],
    ]);
  }

  roomMove(hotel, r, room) {
    const from = r.room;
    from.guest = undefined;
    from.status = "DIRTY";
    room.guest = r.id;
    r.room = room;
    return this.envelope(hotel, "Reservation", "ROOM_MOVE", r.id, [["RoomNumber", from.number, room.number], ["RoomType", from.type, room.type], ["MoveReason", undefined, this.pick(["Guest request", "Maintenance", "Upgrade"])]]);
  }

  posting(hotel, r) {
    const [code, description, low, high] = this.pick(CHARGES);
    const amount = (low + this.rand() * (high - low)).toFixed(2);
    const old = r.balance.toFixed(2);
    r.balance += Number(amount);
    return this.envelope(hotel, "Cashiering", "POST_CHARGE", r.id, [
      ["TransactionCode", undefined, code], ["Description", undefined, description], ["Amount", undefined, amount, "Decimal"],
      ["Currency", undefined, "EUR"], ["Balance", old, r.balance.toFixed(2), "Decimal"], ["RoomNumber", r.room.number, r.room.number],
    ]);
  }

  checkOut(hotel, r) {
    const room = r.room;
    room.guest = undefined;
    room.status = "DIRTY";
    hotel.reservations.delete(r.id);
    return this.envelope(hotel, "Reservation", "CHECKOUT", r.id, [["ReservationStatus", "CHECKED_IN", "CHECKED_OUT"], ["RoomNumber", room.number, undefined], ["Balance", r.balance.toFixed(2), "0.00", "Decimal"]]);
  }

  housekeeping(hotel, room) {
    const old = room.status;
    room.status = old === "DIRTY" ? "CLEAN" : "INSPECTED";
    return this.envelope(hotel, "Housekeeping", "ROOM_STATUS_CHANGE", `${hotel.code}-ROOM-${room.number}`, [["RoomNumber", room.number, room.number], ["HousekeepingStatus", old, room.status], ["Attendant", undefined, this.pick(FIRST_NAMES)]]);
  }
}

/** The live status line: redrawn in place on a terminal, every few seconds otherwise. */
class StatusLine {
  constructor() { Object.assign(this, { tty: process.stderr.isTTY, shownAt: 0, text: "" }); }

  show(text) {
    this.text = text;
    const now = Date.now();
    if (this.tty) process.stderr.write(`\r\x1b[K${text}`);
    else if (now - this.shownAt >= 5000) { process.stderr.write(text + "\n"); this.shownAt = now; }
  }

  end() { if (this.tty && this.text) process.stderr.write("\n"); }
}
