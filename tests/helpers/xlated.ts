/**
 * What a loaded BPF program returns, read from `bpftool prog dump xlated`
 * (the instructions the kernel runs, after the verifier's rewrites).
 *
 * Not "each exit is preceded by r0 = 1": a jump can land on an exit whose
 * preceding instruction it skipped. Instead a forward data flow over the main
 * function's control flow graph: r0 is a known constant after `r0 = K` or
 * `w0 = K`, unknown after anything else that writes it (a helper or
 * subprogram call, a load, a move from another register, arithmetic); at a
 * join two different values make it unknown. Each `exit` reached from the
 * entry gets the set of values r0 can hold there. Subprograms (reached only
 * by `call pc+N`, including bpf_loop callbacks) return to their caller, so
 * their exits are not the program's and are not followed.
 *
 * @module
 */

/** r0 at an exit: a constant, or "unknown" when some path leaves it not constant. */
export type R0 = number | "unknown";

interface Insn {
  idx: number;
  op: number;
  text: string;
}

/** The instructions of a text dump (`bpftool prog dump xlated id N`), by index. */
export function parseXlated(dump: string): Map<number, Insn> {
  const out = new Map<number, Insn>();
  for (const line of dump.split("\n")) {
    const m = /^\s*(\d+): \(([0-9a-f]{2})\) (.*)$/.exec(line);
    if (m) {
      out.set(Number(m[1]), { idx: Number(m[1]), op: parseInt(m[2]!, 16), text: m[3]!.trim() });
    }
  }
  return out;
}

const BPF_CLASS = 0x07, BPF_JMP = 0x05, BPF_JMP32 = 0x06, BPF_OP = 0xf0;
const OP_JA = 0x00, OP_CALL = 0x80, OP_EXIT = 0x90;

/** The value r0 holds at each exit of the program's main function, by instruction index. */
export function exitValues(dump: string): Map<number, R0> {
  const insns = parseXlated(dump);
  if (!insns.has(0)) throw new Error("no instruction 0 in the dump");
  const next = (i: number) => {
    let j = i + 1;
    while (!insns.has(j) && j < i + 3) j++; // ld_imm64 takes two slots
    return j;
  };
  const at = new Map<number, R0 | undefined>(); // r0 on entry; undefined: r0 not yet written
  const exits = new Map<number, R0>();
  const seen = new Set<number>();
  const work: [number, R0 | undefined][] = [[0, undefined]];
  const join = (a: R0 | undefined, b: R0 | undefined): R0 | undefined => a === b ? a : "unknown";
  while (work.length > 0) {
    const [i, inR0] = work.pop()!;
    const insn = insns.get(i);
    if (insn === undefined) throw new Error(`a jump to ${i}, which is not an instruction`);
    if (seen.has(i)) {
      const merged = join(at.get(i), inR0);
      if (merged === at.get(i)) continue;
      at.set(i, merged);
    } else {
      seen.add(i);
      at.set(i, inR0);
    }
    const r0 = at.get(i);
    const cls = insn.op & BPF_CLASS, op = insn.op & BPF_OP;
    const jump = cls === BPF_JMP || cls === BPF_JMP32;
    if (jump && op === OP_EXIT) {
      // r0 never written (undefined) is an uninitialised read: the verifier refuses it.
      const value = r0 === undefined ? "unknown" : r0;
      const before = exits.get(i);
      exits.set(i, before === undefined || before === value ? value : "unknown");
      continue;
    }
    if (jump && op === OP_CALL) {
      work.push([next(i), "unknown"]); // a helper's or a subprogram's result
      continue;
    }
    if (jump) {
      const m = /gotol? pc([+-]\d+)/.exec(insn.text);
      if (!m) throw new Error(`a jump without a target: ${i}: ${insn.text}`);
      const target = i + 1 + Number(m[1]);
      work.push([target, r0]);
      if (op !== OP_JA) work.push([next(i), r0]);
      continue;
    }
    work.push([next(i), writesR0(insn) ? constantR0(insn) : r0]);
  }
  return exits;
}

/** The instruction writes r0 (or w0): its text assigns to it. */
function writesR0(insn: Insn): boolean {
  return /^[rw]0 (?:[-+*/%&|^]|<<|>>|s>>)?= /.test(insn.text);
}

/** `r0 = K` / `w0 = K` (a 64- or 32-bit move of an immediate): K; anything else unknown. */
function constantR0(insn: Insn): R0 {
  const m = /^[rw]0 = (-?(?:0x[0-9a-f]+|\d+))$/.exec(insn.text);
  const mov = insn.op === 0xb7 || insn.op === 0xb4;
  return mov && m ? Number(m[1]) : "unknown";
}
