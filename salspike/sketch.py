"""The protocol sketch: a small schematic of the circuit with what a protocol did to it.

One function for every protocol: `sketch_data` turns a circuit's layout
(`salspike.circuit.circuit_layout`), the hook calls a run made (`salspike.protocols.hooklog`) and
what its table reads into a JSON-able dict (stored in the protocol's table), and `draw_sketch`
draws it on an axis:

* the upstream stream h0 (bottom) .. hK (top) on the left, the downstream stream hbar1 .. hbarK on
  the right; the four synapse groups as arrows in their colours (W up the left, Wbar down the
  right, V across from h^k to hbar^k, Vbar from hbar^{k+1} onto the apical side of h^{k+1}; fixed
  identities grey and thin);
* input x into h0 and the target into the error population hbarK where the protocol ran trials;
* a silenced population filled grey and crossed, a clamped one with a thick outline, a stimulated
  one with an arrow in, a silenced apical input (or a lesioned group) crossed on its arrow, a frozen
  group dotted, what the table reads ringed in blue ("read");
* "(n/m)" where a manipulation was applied in n of the m conditions (levels opened).
"""

from __future__ import annotations

__all__ = ["sketch_data", "draw_sketch", "GROUP_COLOURS"]

#: the synapse groups' colours (Okabe-Ito), shared with the level comparison's figures
GROUP_COLOURS = {"W": "#0072B2", "Wbar": "#D55E00", "V": "#009E73", "Vbar": "#CC79A7"}
_READ = "#56B4E9"


def sketch_data(layout, hooks: list[dict], reads=()) -> dict:
    """The sketch of a run: populations (name -> [stream, layer, role]), projections ([name, group,
    pre, post, plastic-able]), the hook summary and the targets the table reads (population names,
    roles, group names such as "W" or "W0")."""
    return {"populations": {n: [p.stream, p.layer, p.role] for n, p in layout.populations.items()},
            "projections": [[p.name, p.group, p.pre, p.post, bool(p.stored)] for p in layout.projections.values()
                            if p.group in GROUP_COLOURS],
            "hooks": list(hooks), "reads": list(reads)}


def _resolve(token: str, sketch: dict) -> tuple[set[str], set[str]]:
    """(populations, projections) a target names: a population, a role, a group or a projection."""
    pops = {n for n, (_, _, role) in sketch["populations"].items() if token in (n, role)}
    projs = {p[0] for p in sketch["projections"] if token in (p[0], p[1])}
    return pops, projs


def _position(sketch: dict, name: str) -> tuple[float, float]:
    stream, layer, _ = sketch["populations"][name]
    return (0.0 if stream == "up" else 1.0), float(layer)


def draw_sketch(ax, sketch: dict, title: str = "protocol") -> None:
    """Draw a `sketch_data` dict on ``ax`` (axis off; data coordinates: streams at x = 0 and 1,
    layer k at y = k)."""
    from matplotlib.patches import Circle, FancyArrowPatch

    hooks = {}
    for h in sketch["hooks"]:
        pops, projs = _resolve(h["target"], sketch) if h["hook"] != "drive" else (set(), set())
        for t in pops | projs | ({h["target"]} if h["hook"] == "drive" else set()):
            hooks.setdefault(t, []).append(h)
    reads_p, reads_g = set(), set()
    for token in sketch["reads"]:
        p, g = _resolve(token, sketch)
        reads_p |= p
        reads_g |= g
    for h in sketch["hooks"]:
        if h["hook"] == "record":
            p, g = _resolve(h["target"], sketch)
            reads_p |= p
            reads_g |= g

    thawed = set()
    for h in sketch["hooks"]:
        if h["hook"] == "unfreeze":
            thawed |= _resolve(h["target"], sketch)[1]

    def label(h):
        return f"\n({h['conditions']}/{h['of']} runs)" if h["of"] > 1 and h["conditions"] < h["of"] else ""

    r, gap = 0.3, 1.6  # node radius; distance of the streams (layers are 1 apart)
    nodes = {}
    for name, (stream, layer, role) in sketch["populations"].items():
        x, y = _position(sketch, name)
        x *= gap
        mine = hooks.get(name, [])
        kinds = {h["hook"] for h in mine}
        if "unclamp" in kinds:  # released again (e.g. a soma free to fire in a silenced network)
            kinds -= {"silence", "clamp"}
            mine = [h for h in mine if h["hook"] not in ("silence", "clamp")]
        face = "0.75" if "silence" in kinds else "white"
        nodes[name] = Circle((x, y), r, facecolor=face, edgecolor="k", lw=2.5 if "clamp" in kinds else 1.0, zorder=2)
        ax.add_patch(nodes[name])
        ax.text(x, y, name, ha="center", va="center", fontsize=5.5, zorder=5)
        if name in reads_p:
            ax.add_patch(Circle((x, y), r + 0.08, facecolor="none", edgecolor=_READ, lw=1.5, zorder=3))
        notes = []
        for h in mine:
            if h["hook"] == "silence":
                d = r * 0.7
                ax.plot([x - d, x + d], [y - d, y + d], color="0.4", lw=0.8, zorder=4)
                ax.plot([x - d, x + d], [y + d, y - d], color="0.4", lw=0.8, zorder=4)
                notes.append("silenced" + label(h))
            elif h["hook"] == "clamp":
                notes.append("clamped" + label(h))
            elif h["hook"] == "stimulate":
                notes.append("stimulated" + label(h))
            elif h["hook"] == "silence_apical":
                ax.plot(x + r + 0.15, y - 0.12, "x", ms=7, mew=2, color="k", zorder=4)
                n = h["neurons"]
                some = "" if n == "all" else (f"\n{min(n)}-{max(n)} neurons" if len(n) > 1 else f"\n{n[0]} neuron" + "s" * (n[0] != 1))
                notes.append(f"apical cut{some}" + label(h))
        if notes:
            side = -1 if stream == "up" else 1
            note = ax.text(x + side * (r + 0.05), y + 0.1, "\n".join(notes), ha="right" if side < 0 else "left",
                           va="center", fontsize=4.5, linespacing=1.0)
            note.set_in_layout(False)  # the panel keeps its size; notes may reach into the margin
    for name, group, pre, post, stored in sketch["projections"]:
        (x0, y0), (x1, y1) = _position(sketch, pre), _position(sketch, post)
        x0, x1 = x0 * gap, x1 * gap
        mine = {h["hook"] for h in hooks.get(name, [])}
        if x0 != x1:  # V and Vbar across, side by side; W and Wbar along the streams
            y0 = y1 = (y0 + 0.12) if group == "V" else (y1 - 0.12)
        style = ":" if "freeze" in mine and name not in thawed else "-"
        colour = GROUP_COLOURS[group] if stored else "0.6"
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=8, patchA=nodes[pre],
                                     patchB=nodes[post], shrinkA=1, shrinkB=1, color=colour,
                                     lw=1.6 if stored else 0.8, linestyle=style, zorder=1))
        mid = ((x0 + x1) / 2, (y0 + y1) / 2)
        if name in reads_g:
            ax.plot(*mid, "o", ms=8, mfc="none", mec=_READ, mew=1.5, zorder=3)
        if "lesion" in mine:
            ax.plot(*mid, "x", ms=8, mew=2, color="k", zorder=4)
    drives = {h["target"] for h in sketch["hooks"] if h["hook"] == "drive"}
    K = max(layer for _, layer, _ in sketch["populations"].values())
    if "input" in drives:
        ax.annotate("input x", (0, -r), (0, -0.75), ha="center", va="top", fontsize=6,
                    arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 1})
    if "target" in drives:
        ax.annotate("target y", (gap, K + r), (gap, K + 0.75), ha="center", va="bottom", fontsize=6,
                    arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 1})
    legend = [("W", "W (up)"), ("Wbar", "Wbar (down)"), ("V", "V (h\u2192hbar)"), ("Vbar", "Vbar (apical)")]
    for g, text in legend:
        ax.plot([], [], color=GROUP_COLOURS[g], lw=1.6, label=text)
    ax.plot([], [], "o", ms=7, mfc="none", mec=_READ, mew=1.5, label="read by the table")
    if any("freeze" in {h["hook"] for h in hooks.get(p[0], [])} and p[0] not in thawed
           for p in sketch["projections"]):
        ax.plot([], [], ":", color="0.3", lw=1.4, label="frozen (no plasticity)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=5, ncol=2,
              handlelength=1.5, columnspacing=0.8)
    ax.set(xlim=(-1.5, gap + 1.5), ylim=(-1.0, K + 1.0), aspect="equal", title=title)
    ax.title.set_fontsize(7)
    ax.axis("off")
