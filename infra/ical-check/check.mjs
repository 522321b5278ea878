// Reads an iCalendar document from stdin with ical.js; prints the number of VEVENTs and
// VTIMEZONEs, and every event's start. Exits non-zero if ical.js cannot read it.
import ICAL from "ical.js";

let text = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) text += chunk;
const calendar = new ICAL.Component(ICAL.parse(text));
for (const zone of calendar.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(zone);
}
const events = calendar.getAllSubcomponents("vevent").map((c) => new ICAL.Event(c));
for (const event of events) {
  if (!event.startDate || !event.endDate) throw new Error(`event ${event.uid} has no start or end`);
  event.startDate.toJSDate();
}
console.log(`ok ${events.length} ${calendar.getAllSubcomponents("vtimezone").length}`);
