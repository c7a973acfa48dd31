namespace Consort.Training;

/// <summary>
/// LoRA fine-tuning: the base weights stay frozen and each target matrix W gets a trainable low-rank update, so the
/// forward pass computes <c>W x + (Alpha / Rank) · B (A x)</c>, exactly what llama.cpp computes for a GGUF adapter at scale 1.
/// </summary>
public sealed record LoraSettings
{
    /// <summary>The block matrices LoRA can adapt (short names; the GGUF tensor is <c>blk.N.NAME.weight</c>).</summary>
    public static readonly IReadOnlyList<string> AllTargets = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

    /// <summary>Rank r of every update.</summary>
    public int Rank { get; init; } = 8;
    /// <summary>lora_alpha: the update is scaled by Alpha / Rank (written to the adapter as <c>adapter.lora.alpha</c>).</summary>
    public float Alpha { get; init; } = 16;
    /// <summary>Adapted matrices in every block (short names from <see cref="AllTargets"/>).</summary>
    public IReadOnlyList<string> Targets { get; init; } = AllTargets;
    /// <summary>Seed of A's random initialization (B starts at zero, so training starts from the base model exactly).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>The factor on B A.</summary>
    public float Scale => Alpha / Rank;

    /// <summary>Throws on settings the trainer cannot use.</summary>
    public void Validate()
    {
        if (Rank <= 0) throw new ConsortException($"LoRA rank must be positive, got {Rank}");
        if (!float.IsFinite(Alpha) || Alpha <= 0) throw new ConsortException($"LoRA alpha must be a positive number, got {Alpha}");
        if (Targets.Count == 0) throw new ConsortException("LoRA needs at least one target matrix");
        foreach (var t in Targets)
            if (!AllTargets.Contains(t)) throw new ConsortException($"unknown LoRA target '{t}'; valid targets: {string.Join(", ", AllTargets)}");
        if (Targets.Distinct().Count() != Targets.Count) throw new ConsortException("LoRA targets are listed twice");
    }

    /// <summary>Parses a comma-separated target list (e.g. <c>attn_q,attn_v</c>).</summary>
    public static IReadOnlyList<string> ParseTargets(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToArray();
}
