// Reads a JSON array of texts on standard input and writes, for each, what Twilio's
// segment calculator (the npm package sms-segments-calculator) says of it: encoding,
// segment count and the units (GSM-7 septets or UTF-16 code units) in each segment,
// user data header excluded. Run with NODE_PATH pointing at a node_modules folder
// that holds the package.
const { SegmentedMessage } = require("sms-segments-calculator");
const version = require("sms-segments-calculator/package.json").version;

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const answers = JSON.parse(input).map((text) => {
    const message = new SegmentedMessage(text);
    const bitsPerUnit = message.encodingName === "GSM-7" ? 7 : 16;
    return {
      encoding: message.encodingName,
      segments: message.segmentsCount,
      part_units: message.segments.map((segment) => segment.messageSizeInBits() / bitsPerUnit),
    };
  });
  process.stdout.write(JSON.stringify({ version, answers }));
});
