#!/usr/bin/env node
// The operator's and vendor's command line for PMS Events: one file per command in
// bin/commands/, what they share in bin/lib/service.mjs.
//
//   pms-events tail --chain TTE [--from N | --resume FILE]   stream a chain's events as JSON lines
//   pms-events simulate --chain TTE --rate 50 [--duration 60]  publish a simulated hotel day
//   pms-events receive [--port 8789]                          a verifying webhook receiver
//   pms-events config check FILE | config hash-secret        the Worker's own configuration checks
import { UsageError, Fatal } from "./lib/service.mjs";

const COMMANDS = {
  tail: () => import("./commands/tail.mjs"),
  simulate: () => import("./commands/simulate.mjs"),
  receive: () => import("./commands/receive.mjs"),
  config: () => import("./commands/config.mjs"),
};

async function main([name, ...argv]) {
  if (!name || name === "--help" || name === "help") {
    const usages = await Promise.all(Object.values(COMMANDS).map(async (load) => (await load()).usage));
    console.error(`usage:\n\n${usages.join("\n\n")}`);
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) throw new UsageError(`unknown command ${name}`);
  const command = await load();
  if (argv.includes("--help")) {
    console.error(command.usage);
    return 0;
  }
  try {
    return await command.run(argv);
  } catch (e) {
    if (e instanceof UsageError) e.message += `\n\n${command.usage}`;
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof UsageError) {
      console.error(`pms-events: ${e.message}`);
      process.exit(2);
    }
    console.error(`pms-events: ${e instanceof Fatal ? e.message : e.stack ?? e}`);
    process.exit(1);
  },
);
