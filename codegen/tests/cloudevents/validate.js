// Validates each line of a JSON Lines file of CloudEvents with the CloudEvents SDK for
// JavaScript (its own compiled CloudEvents 1.0 JSON schema and attribute-name rules).
// Prints one line per invalid event, "line N: reason", then "valid V of T".
"use strict";
const fs = require("fs");
const { CloudEvent } = require("cloudevents");

const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((line) => line.trim() !== "");
let valid = 0;
lines.forEach((line, index) => {
    try {
        new CloudEvent(JSON.parse(line), true);
        valid += 1;
    } catch (error) {
        const details = error.errors ? ` ${JSON.stringify(error.errors)}` : "";
        console.log(`line ${index + 1}: ${error.message}${details}`);
    }
});
console.log(`valid ${valid} of ${lines.length}`);
