"""Terminal rendering of trace output (rich). Every value that comes from the ledger is printed
escaped, so text a participant wrote (a note, a beneficiary) is never read as Rich markup."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


def _kv(d: dict[str, Any], skip: tuple[str, ...]) -> str:
    return ", ".join(f"{k}={escape(str(v))}" for k, v in d.items() if k not in skip)


def _short(h: str) -> str:
    return h[:12] + "…" if len(h) > 12 else h


def print_state_proof(console: Console, sp: dict[str, Any], indent: str = "      ") -> None:
    mark = "[green]✓[/green]" if sp["verified"] else "[red]✗[/red]"
    console.print(f"{indent}state proof {mark} key {escape(sp['key'])} → bucket {sp['bucket']} "
                  f"({len(sp['bucket_entries'])} entries, {len(sp['siblings'])} siblings) → root "
                  f"{_short(sp['state_root'])} = block {sp['block_height']} header")
    console.print(f"{indent}  siblings: " + " ".join(_short(h) for h in sp["siblings"][:4])
                  + (" …" if len(sp["siblings"]) > 4 else ""))


def print_trace(console: Console, out: dict[str, Any]) -> None:
    ret = out.get("retirement")
    if ret is not None:
        p = ret["proof"]
        console.print(f"[bold]{escape(ret['retirement_id'])}[/bold]: {ret['quantity_g']:,} g retired by "
                      f"{escape(ret['account'])} for {escape(ret['beneficiary'])} ({escape(ret['purpose'])}, "
                      f"{ret['period'][0]} – {ret['period'][1]}, {escape(ret['jurisdiction'])})")
        if ret["note"]:
            console.print(f"  note: {escape(ret['note'])}")
        console.print(f"  block {p['height']} tx {_short(p['tx_hash'])} tx proof "
                      f"{'[green]✓[/green]' if p['verified'] else '[red]✗[/red]'}; from "
                      f"{len(out['lots'])} lot(s)")
        print_state_proof(console, ret["state_proof"], "  ")
    for lot in out["lots"]:
        console.print(f"[bold]{escape(lot['lot_id'])}[/bold]  (device {escape(lot['device_id'])})")
        for st in lot["steps"]:
            proof = st.get("proof")
            if proof:
                mark = "[green]✓[/green]" if proof["verified"] else "[red]✗[/red]"
                where = (f"block {proof['height']} tx {_short(proof['tx_hash'])} (#{proof['index']} of "
                         f"{proof['size']}, {len(proof['path'])}-hash path to tx root "
                         f"{_short(proof['tx_root'])}) {mark}")
            else:
                where = f"height {st.get('height')}"
            console.print(f"  [cyan]{st['step']:<15}[/cyan] {where}")
            if st["step"] == "current_state":
                for seg in st["segments"]:
                    console.print(f"      units {seg['units'][0]}–{seg['units'][1]}: {escape(seg['holder'])} "
                                  f"{seg['status']} {escape(seg['ref'])}")
                print_state_proof(console, st["state_proof"])
            else:
                console.print("      " + _kv(st, ("step", "proof")))
