/** Each bad command line and the exact line netflow prints for it. */
export const BAD: [string[], string][] = [
  [["--cgroup="], "--cgroup needs a non-empty value"],
  [["--cgroup", "  "], "--cgroup needs a non-empty value"],
  [["--cgroup", "a/../.."], '--cgroup "a/../.." leads above the cgroup v2 root'],
  [["--format"], "--format needs a value (FORMAT)"],
  [
    ["--format", "--cgroup", "X"],
    '--format needs a value (FORMAT), but the next argument is the option "--cgroup"',
  ],
  [["--format", "xml"], '--format takes one of table, json, ecs, tracee, none, not "xml"'],
  [
    ["--ipfix", "http://h:1"],
    '--ipfix takes udp://HOST:PORT or tcp://HOST:PORT, not "http://h:1" (unknown scheme "http")',
  ],
  [
    ["--ipfix", "udp://h"],
    '--ipfix takes udp://HOST:PORT or tcp://HOST:PORT, not "udp://h" (HOST:PORT expected, nothing else)',
  ],
  [
    ["--ipfix", "tcp://h:65536"],
    '--ipfix takes udp://HOST:PORT or tcp://HOST:PORT, not "tcp://h:65536" (the port must be 1 to 65535)',
  ],
  [
    ["--format", "json", "-f", "table"],
    '--format is given twice ("json", then "table"); give it once',
  ],
  [["--max-flows", "-1"], '--max-flows takes a whole number of at least 1, not "-1"'],
  [["--max-flows=-1"], '--max-flows takes a whole number of at least 1, not "-1"'],
  [["--max-flows", "0"], '--max-flows takes a whole number of at least 1, not "0"'],
  [["--max-flows", "1e3"], '--max-flows takes a whole number of at least 1, not "1e3"'],
  [
    ["--max-flows", "1", "--max-flows", "2"],
    '--max-flows is given twice ("1", then "2"); give it once',
  ],
  [["--dns-grace", "-5"], '--dns-grace takes a whole number of at least 0, not "-5"'],
  [
    ["--ring-size", "3000"],
    '--ring-size takes a power of two from 4K to 1G bytes (K, M, G suffixes; B or iB optional), not "3000"',
  ],
  [
    ["--ring-size", "2G"],
    '--ring-size takes a power of two from 4K to 1G bytes (K, M, G suffixes; B or iB optional), not "2G"',
  ],
  [["--reader", "bogus"], '--reader takes mmap or callback, not "bogus"'],
  [
    ["--events", "nope"],
    'Unknown event "nope" in --events (known: begin, end, update, fail, packet, or the full names net_flow_tcp_begin, net_flow_tcp_end, net_flow_tcp_update, net_flow_tcp_fail, net_packet_tcp)',
  ],
  [["--events", ","], "--events needs at least one event name"],
  [["--count", "0"], '--count takes a whole number of at least 1, not "0"'],
  [["--duration", "0"], '--duration takes a number of seconds greater than 0, not "0"'],
  [["--duration", "-1"], '--duration takes a number of seconds greater than 0, not "-1"'],
  [["--duration", "soon"], '--duration takes a number of seconds greater than 0, not "soon"'],
  [["--verbose=yes"], "--verbose takes no value"],
  [["--nope"], 'Unknown option "--nope"'],
  [["--fromat", "json"], 'Unknown option "--fromat" (did you mean --format?)'],
  [["-x"], 'Unknown option "-x"'],
  [["positional"], 'Unexpected argument "positional" (netflow takes only options)'],
  [["--", "x"], 'Unexpected argument "x" (netflow takes only options)'],
];
