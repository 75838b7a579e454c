// Reads each line — {"headers": {...}, "body": "..."}, a CloudEvent in binary mode — with
// the CloudEvents SDK for JavaScript's binary-mode reader (the HTTP binding, whose `ce-`
// headers are the NATS binding's too), which validates the event it builds. Prints one
// line per invalid event, "line N: reason", then "valid V of T".
"use strict";
const fs = require("fs");
const { HTTP } = require("cloudevents");

const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((line) => line.trim() !== "");
let valid = 0;
lines.forEach((line, index) => {
    try {
        const message = JSON.parse(line);
        const event = HTTP.toEvent(message);
        event.validate();
        valid += 1;
    } catch (error) {
        const details = error.errors ? ` ${JSON.stringify(error.errors)}` : "";
        console.log(`line ${index + 1}: ${error.message.split("\n")[0]}${details}`);
    }
});
console.log(`valid ${valid} of ${lines.length}`);
