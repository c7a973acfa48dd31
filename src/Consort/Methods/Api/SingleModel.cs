using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary><c>single_model</c>: one model on its own, the baseline every collaboration is compared with.</summary>
public sealed class SingleModelMethod : ICollaborationMethod
{
    /// <inheritdoc />
    public string Name => "single_model";
    /// <inheritdoc />
    public CollaborationLevel Level => CollaborationLevel.Api;
    /// <inheritdoc />
    public string Description => "One model answers alone (the baseline).";
    /// <inheritdoc />
    public ModelAccess Requires => ModelAccess.Text;
    /// <inheritdoc />
    public bool RequiresSharedVocabulary => false;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => 1;
    /// <inheritdoc />
    public IReadOnlyList<HyperparameterSpec> Hyperparameters => [];

    /// <inheritdoc />
    public Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default)
    {
        var member = context.Models[0];
        var settings = GenerationSettings.From(context.Hyperparameters);
        var descriptor = member.Descriptor with { Name = context.Name };
        return Task.FromResult(new ConsortModel(descriptor, new Client(descriptor, member, settings), member.Tokens, [member], Name));
    }

    private sealed class Client(ModelDescriptor descriptor, ConsortModel member, GenerationSettings settings) : CollaborationChatClient(descriptor)
    {
        protected override Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct) =>
            CallAsync(member, messages, settings.Apply(options), trace, "answer", ct);

        // A single model streams token by token.
        public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await foreach (var u in member.Chat.GetStreamingResponseAsync(messages, settings.Apply(options), cancellationToken).ConfigureAwait(false))
                yield return u;
        }
    }
}
